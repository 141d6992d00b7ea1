from dataclasses import replace

import pytest

from jetsynth.core.frontier import frontier_rows
from jetsynth.errors import JetsynthError
from jetsynth.report.plots import write_plots
from jetsynth.report.run_report import (
    efficiency_table,
    layer_table,
    summary,
    table1_header,
    write_markdown,
)
from jetsynth.run.config import EvolveConfig
from jetsynth.run.evolve import evolve
from jetsynth.run.rundir import load_records
from tests.member_records import member as member_record
from tests.member_records import members

REQUIRED = {"generation", "member", "parents", "accuracy", "synapses", "clusters",
            "synaptic_efficiency", "cluster_efficiency", "macs", "fps"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "run"
    evolve(EvolveConfig(data="digits", subset=0.3, generations=3, ancestor_epochs=1, epochs=1,
                        keep=0.5), path)
    return path


def test_summary_has_the_contract_fields(run_dir):
    data = summary(run_dir)
    assert set(data["ancestor"]) >= REQUIRED
    assert len(data["members"]) == 3
    for member in data["members"]:
        assert set(member) >= REQUIRED
    assert data["ancestor"]["synaptic_efficiency"] == 1.0
    assert len(data["members"][-1]["layers"]) == 4


def test_tables(run_dir):
    _, records = load_records(run_dir)
    rows = efficiency_table(records)
    assert rows[0][:2] == ["1", "0"] and rows[0][3] == "1.00×"
    assert rows[0][2] == f"{records[0].synapses:,}" and rows[0][6] == f"{records[0].macs:,}"
    assert rows[0][8] == f"{records[0].synapses * 4 / 1024:,.1f}"  # KiB of fp32 weights
    assert len(layer_table(records)[0]) == 2 + 4 + 1


def test_plots_are_pngs(run_dir):
    _, records = load_records(run_dir)
    paths = write_plots(run_dir, records)
    assert {p.name for p in paths} >= {"accuracy.png", "synaptic_efficiency.png",
                                        "cluster_efficiency.png"}
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_not_a_run_dir(tmp_path):
    with pytest.raises(JetsynthError, match="not a jetsynth run directory"):
        summary(tmp_path)


def test_markdown_tables(run_dir):
    _, records = load_records(run_dir)
    text = write_markdown(run_dir, records).read_text()
    assert "## Architectural efficiency vs accuracy\n\n*seed 001, Table 1" in text
    assert f"| 1 | 0 | {records[0].synapses:,} | 1.00× |" in text and "X |" not in text
    assert "| Gen. | Test acc. | conv1 | conv2 | fc1 | fc2 | All layers |" in text


def test_measured_speed_gets_a_column_and_a_plot(tmp_path, benched_run):
    _, records = load_records(benched_run)
    assert efficiency_table(records)[0][-1] != "-"
    target = tmp_path / "copy"
    paths = write_plots(target, records)
    assert target / "report" / "fps.png" in paths
    assert "| FPS | FPS IQR | Latency (ms) |" in write_markdown(target, records).read_text()


def test_the_spread_of_measured_speeds_is_reported(benched_run):
    _, records = load_records(benched_run)
    header = table1_header(records)
    column = header.index("FPS IQR")
    for record, row in zip(records, efficiency_table(records), strict=True):
        low, high = record.fps_iqr
        assert row[column] == f"{low:,.0f}–{high:,.0f}"
    report = summary(benched_run)
    for member in report["members"]:
        assert member["fps_iqr"][0] <= member["fps"] <= member["fps_iqr"][1]
        assert member["fps_produced_by"] == "onnxruntime on the CPU, fp16 weights, 1 thread"
    assert all(len(row["fps_iqr"]) == 2 for row in report["frontier"] if row["fps"])


def test_latency_column_is_the_inverse_of_the_speed(benched_run):
    _, records = load_records(benched_run)
    latency = efficiency_table(records)[0][table1_header(records).index("Latency (ms)")]
    # ms per query, as printed (three decimals)
    assert float(latency) == pytest.approx(1000 / records[0].fps, rel=1e-3, abs=5e-4)


def test_pick_member_by_hand():
    from jetsynth.core.selection import pick_member

    records = members(
        {"id": "a", "generation": 1, "member": 0, "accuracy": 0.99, "macs": 100, "synapses": 10, "fps": 10},
        {"id": "b", "generation": 2, "member": 0, "accuracy": 0.985, "macs": 50, "synapses": 5, "fps": 30},
        {"id": "c", "generation": 3, "member": 0, "accuracy": 0.95, "macs": 10, "synapses": 1, "fps": 90},
    )
    assert pick_member(records).id == "b"  # c is 4 points down
    assert pick_member(records, max_drop=0.05).id == "c"
    assert pick_member(records, generation=3, member=0).id == "c"
    unmeasured = [replace(r, fps=None) for r in records]
    assert pick_member(unmeasured).id == "b"  # fewest MACs within one point
    with pytest.raises(JetsynthError, match="no finished member"):
        pick_member(records, generation=4)


def test_timed_runs_report_their_frontier(tmp_path, benched_run):
    from jetsynth.report.plots import write_frontier_plot
    from jetsynth.report.run_report import summary

    report = summary(benched_run)
    assert report["accuracy_floor"] == pytest.approx(report["ancestor"]["val_accuracy"] - 0.01)
    assert [row["generation"] for row in report["frontier"]] == [1, 2, 3]
    assert report["frontier"][0]["fastest"] == "g01-m00" and report["frontier"][0]["source"] == "measured"
    assert all(m["fps_source"] == "measured" and "fps_predicted" in m for m in report["members"])
    _, records = load_records(benched_run)
    path = write_frontier_plot(tmp_path, records, report["accuracy_floor"], target_fps=1000.0)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    frontier = frontier_rows(records, report["accuracy_floor"])
    assert [row.to_json() for row in frontier] == report["frontier"]
    text = write_markdown(tmp_path, records, frontier).read_text()
    assert "FPS/accuracy frontier per generation" in text


def test_best_members_and_the_floor_are_chosen_on_validation():
    from jetsynth.core.selection import pick_member
    from jetsynth.report.run_report import _best_per_generation, run_floor

    base = {"macs": 10, "synapses": 5, "clusters": 3, "fps": None, "parents": [],
            "synaptic_efficiency": 1.0, "cluster_efficiency": 1.0, "mac_reduction": 1.0}
    records = members(
        {**base, "id": "a", "generation": 1, "member": 0, "accuracy": 0.95, "val_accuracy": 0.99,
         "macs": 100},
        # test says b keeps within a point of the ancestor, validation says it does not
        {**base, "id": "b", "generation": 2, "member": 0, "accuracy": 0.95, "val_accuracy": 0.90},
        {**base, "id": "c", "generation": 2, "member": 1, "accuracy": 0.90, "val_accuracy": 0.985,
         "macs": 50},
    )
    assert pick_member(records).id == "c"
    assert [r.id for r in _best_per_generation(records)] == ["a", "c"]
    assert run_floor(EvolveConfig(), records) == pytest.approx(0.98)
    assert layer_table(records)[1][:2] == ["2", "0.9000"]  # reported: c's test accuracy
    assert efficiency_table(records)[2][-1] == "0.9850"  # the validation column
    old = [replace(r, val_accuracy=None) for r in records]
    assert pick_member(old).id == "b"  # records without val_accuracy: test accuracy decides


def test_a_table_of_many_layers_is_transposed():
    from jetsynth.report.run_report import layer_view

    names = [f"layer{i}.conv1" for i in range(1, 10)]
    records = [member_record(generation=g, member=0, id=f"g{g:02d}-m00", accuracy=0.5 + g / 10,
                      val_accuracy=0.5, parents=[], cluster_efficiency=float(g),
                      layers=[{"name": n, "synapses": 9, "clusters": 1, "macs": 90} for n in names],
                      layer_cluster_efficiency=[float(g)] * 9) for g in (1, 2)]
    header, rows = layer_view(records)
    assert header == ["Layer", "Gen. 1", "Gen. 2"]
    assert rows[0] == ["Test acc.", "0.6000", "0.7000"] and rows[1] == ["layer1.conv1", "1.00×", "2.00×"]
    assert rows[-1] == ["All layers", "1.00×", "2.00×"] and len(rows) == 1 + 9 + 1
    header, rows = layer_view([replace(r, layers=r.layers[:8], layer_cluster_efficiency=(1.0,) * 8)
                               for r in records])
    assert header[:3] == ["Gen.", "Test acc.", "layer1.conv1"]  # seed 001's layout up to 8 layers


def test_report_json_gives_each_member_as_its_member_json_holds_it(benched_run):
    """`report --json` reads typed records but prints the figures member.json holds, unchanged."""
    import json

    from jetsynth.report.run_report import SUMMARY_FIELDS

    report = summary(benched_run)
    for entry in report["members"]:
        written = json.loads((benched_run / "members" / entry["id"] / "member.json").read_text())
        assert {k: entry[k] for k in SUMMARY_FIELDS} == {k: written.get(k) for k in SUMMARY_FIELDS}
        assert entry["fps_produced_by"] == written["bench"]["produced_by"]
        assert entry["layers"] == [{**layer, "cluster_efficiency": eff} for layer, eff in
                                   zip(written["layers"], written["layer_cluster_efficiency"], strict=True)]
    assert all(isinstance(row["fps_iqr"], list) for row in report["frontier"] if row["fps"])


def test_overlap_rows_are_what_report_json_writes(benched_run):
    from jetsynth.report.run_report import OverlapRow, overlap_by_generation

    config, records = load_records(benched_run)
    rows = overlap_by_generation(benched_run, records, config.cluster)
    assert [(row.generation, row.members) for row in rows] == [
        (g, sum(r.generation == g for r in records)) for g in (1, 2, 3)]
    assert rows[0] == OverlapRow(1, 1, rows[0].average_overlap)
    assert summary(benched_run)["generations"] == [row.to_json() for row in rows]
