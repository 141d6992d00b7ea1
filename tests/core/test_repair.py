"""Growth as repair (`evolve --grow-on-drop`): where it widens, when it deepens instead, when it
keeps the repair, and that repaired networks mate with unrepaired ones."""

import json
from types import SimpleNamespace

import torch
from click.testing import CliRunner
from torch import nn

from jetsynth.cli.main import cli
from jetsynth.core.genome import Lineage, ancestor_genome, topology_for
from jetsynth.core.grow_genome import grow_genome, harmonize
from jetsynth.core.repair import RepairTry, most_lost_layer, repair_offspring, widen_where_lost
from jetsynth.core.synthesis import SynthesisConfig, synthesize
from jetsynth.nn.growth import Transform


def _pruned(genome, layer, keep_rows):
    masks = {k: v.clone() for k, v in genome.masks.items()}
    masks[layer][keep_rows:] = False
    return genome.with_masks(masks, Lineage("g02-m01", 2, 1, ("g01-m00",)))


def test_the_layer_that_lost_most_is_widened_and_the_function_kept():
    parent = ancestor_genome("small-cnn", (1, 16, 16), 10, 0)
    child = _pruned(parent, "4", 8)  # layer 4 keeps 8 of 32 filters: 75 % lost
    assert most_lost_layer(child, parent) == ("4", 0.75)
    grown, transform, share = widen_where_lost(child, parent)
    assert transform.kind == "wide" and transform.layer == "4" and transform.kernel == 3
    assert transform.uid == (2 * 10_000 + 1) * 10 + 1 and share == 0.75
    x = torch.randn(4, 1, 16, 16)
    assert torch.allclose(child.build().eval()(x), grown.build().eval()(x), atol=1e-5)


def _result(genome, val):
    return SimpleNamespace(genome=genome, metrics={"val_accuracy": val})


def test_repair_only_below_the_drop_and_kept_only_when_it_recovers():
    parent = ancestor_genome("small-cnn", (1, 16, 16), 10, 0)
    child = _pruned(parent, "4", 8)
    calls = []

    def retrain(value):
        def run(genome):
            calls.append(genome.arch)
            return _result(genome, value)
        return run

    same, info = repair_offspring(_result(child, 0.95), parent, 0.955, 0.01, retrain(0.99))
    assert info is None and same.genome is child and not calls  # lost half a point: no repair
    kept, info = repair_offspring(_result(child, 0.90), parent, 0.95, 0.01, retrain(0.93))
    assert info.kept and kept.genome.arch.startswith("small-cnn|wide(4,3,")
    assert info.drop == 0.05 and info.val_before == 0.90 and info.val_after == 0.93
    dropped, info = repair_offspring(_result(child, 0.90), parent, 0.95, 0.01, retrain(0.89))
    assert not info.kept and dropped.genome is child


def test_deepened_when_widening_does_not_recover():
    parent = ancestor_genome("small-cnn", (1, 16, 16), 10, 0)
    child = _pruned(parent, "4", 8)
    calls = []

    def retrain(genome):
        calls.append(genome.arch)
        return _result(genome, 0.93 if "|deep(" in genome.arch else 0.89)

    kept, info = repair_offspring(_result(child, 0.90), parent, 0.95, 0.01, retrain)
    wide, deep = (f"{kind}(4,3,4,{(2 * 10_000 + 1) * 10 + 1 + i})" for i, kind in enumerate(("wide", "deep")))
    assert calls == [f"small-cnn|{wide}", f"small-cnn|{deep}"]  # both grown from the unrepaired child
    assert info.kept and info.transform == deep and info.val_after == 0.93
    assert info.tries == (RepairTry(wide, 0.89), RepairTry(deep, 0.93))
    assert kept.genome.arch == f"small-cnn|{deep}"
    x = torch.randn(4, 1, 16, 16)
    assert torch.allclose(child.build().eval()(x), kept.genome.build().eval()(x), atol=1e-5)


def _two_by_two(input_shape, num_classes):
    """Convs with 2×2 kernels: no 1×1, 3×3 or 5×5 block aligns with them, so they cannot widen."""
    features = 8 * (input_shape[1] - 2) * (input_shape[2] - 2)
    return nn.Sequential(nn.Conv2d(input_shape[0], 4, 2), nn.ReLU(), nn.Conv2d(4, 8, 2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(features, num_classes))


def test_deepened_when_the_layer_cannot_widen():
    topology = topology_for("two-by-two", (1, 6, 6), 3, _two_by_two)
    parent = ancestor_genome("two-by-two", (1, 6, 6), 3, 0, topology=topology)
    child = _pruned(parent, "2", 2)  # conv 2 keeps 2 of 8 filters
    calls = []

    def retrain(genome):
        calls.append(genome.arch)
        return _result(genome, 0.5)

    kept, info = repair_offspring(_result(child, 0.4), parent, 0.6, 0.01, retrain)
    assert info.tries[0].transform == "wide(2)" and info.tries[0].val_after is None
    assert "cannot align" in info.tries[0].refused
    assert calls == [kept.genome.arch] and "|deep(2,3,4," in kept.genome.arch and info.kept
    x = torch.randn(5, 1, 6, 6)
    for train in (True, False):
        assert torch.allclose(child.build().train(train)(x), kept.genome.build().train(train)(x), atol=1e-5)


def test_harmonized_parents_mate_cluster_by_cluster():
    ancestor = ancestor_genome("small-cnn", (1, 16, 16), 10, 0)
    a = grow_genome(ancestor, [Transform("wide", "4", 3, 2, 11)])
    b = grow_genome(ancestor, [Transform("deep", "0", 1, 2, 21)])
    ha, hb = harmonize([a, b])
    assert ha.arch == hb.arch == "small-cnn|wide(4,3,2,11)|deep(0,1,2,21)"
    assert not ha.masks["0.deep21.expand"].any() and hb.masks["0.deep21.expand"].all()
    assert torch.equal(ha.tags["0.deep21.expand"], hb.tags["0.deep21.expand"])
    x = torch.randn(4, 1, 16, 16)
    assert torch.allclose(ha.build().eval()(x), a.build().eval()(x), atol=1e-5)
    union = synthesize([ha, hb], SynthesisConfig(keep=0.9, mates=2, structure="union"),
                       torch.Generator().manual_seed(0), Lineage("g03-m00", 3, 0, ("a", "b")))
    assert union.masks["0.deep21.expand"].any() and union.masks["4.wide11.expand"].any()
    inter = synthesize([ha, hb], SynthesisConfig(keep=0.9, mates=2),
                       torch.Generator().manual_seed(0), Lineage("g03-m00", 3, 0, ("a", "b")))
    assert not inter.masks["0.deep21.expand"].any()  # one parent lacks the block


def test_evolve_grow_on_drop_marks_repairs_in_records_and_report(tmp_path):
    runner = CliRunner()
    run_dir = tmp_path / "run"
    result = runner.invoke(cli, ["evolve", "--generations", "2", "--population", "2", "--parents", "1",
                                 "--keep", "0.2", "--epochs", "1", "--ancestor-epochs", "1",
                                 "--grow-on-drop", "0", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    repairs = [e for e in events if e["event"] == "repair"]
    assert repairs  # --grow-on-drop 0 repairs every offspring that lost anything
    records = {p.name: json.loads((p / "member.json").read_text())
               for p in (run_dir / "members").iterdir()}
    for event in repairs:
        record = records[event["member"]]
        assert record["repair"]["transform"] == event["transform"]
        arch = json.loads((run_dir / "members" / event["member"] / "genome.json").read_text())["arch"]
        assert (event["transform"] in arch) == event["kept"]
    report = runner.invoke(cli, ["report", str(run_dir), "--json"])
    assert report.exit_code == 0, report.output
    marked = [m["id"] for m in json.loads(report.output)["members"] if m.get("repair")]
    assert sorted(marked) == sorted(e["member"] for e in repairs)


def test_grow_on_drop_must_be_a_fraction(tmp_path):
    result = CliRunner().invoke(cli, ["evolve", "--grow-on-drop", "2", "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--grow-on-drop must be a finite number in [0, 1)" in result.output
