"""Seed 000's grid chooses its reported member on validation and checks the paper's target on
test (tools/bench_seed000_grid.py), with hand-computed figures."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from bench_seed000_grid import cell_summary, chosen_member, with_conv_kernels  # noqa: E402
from common import mean_spread  # noqa: E402

from tests.member_records import member as member_record  # noqa: E402


def _member(id_, generation, accuracy, val, synaptic, kernels, conv=(2, 8)):
    """A record with `kernels` in all (conv kernels `conv`, the rest fully-connected neurons)."""
    layers = [{"name": name, "synapses": 1, "clusters": 1, "kind": kind, "kernels": count}
              for name, kind, count in (("conv1", "conv", conv[0]), ("conv2", "conv", conv[1]),
                                        ("fc", "linear", kernels - sum(conv)))]
    return member_record(id=id_, generation=generation, member=int(id_[-2:]), accuracy=accuracy,
                         val_accuracy=val, synaptic_efficiency=synaptic, kernels=kernels,
                         layers=layers, layer_cluster_efficiency=[1.0] * 3,
                         layer_synaptic_efficiency=[1.0] * 3)


ANCESTOR = _member("g01-m00", 1, 0.98, 0.97, 1.0, 1530, conv=(20, 1000))


def test_the_member_is_chosen_on_validation_and_its_test_drop_reported():
    records = [
        ANCESTOR,
        # best on test, but 2.5 points under the ancestor on validation: never chosen
        _member("g09-m00", 9, 0.975, 0.945, 400.0, 20),
        # 1.5 points under on validation; test 0.961: 1.9 points under, 1530 / 30 = 51×
        _member("g08-m01", 8, 0.961, 0.955, 160.0, 30, conv=(4, 8)),
        _member("g07-m00", 7, 0.97, 0.965, 90.0, 45),
    ]
    chosen = chosen_member(records, 0.02)
    assert chosen["id"] == "g08-m01"
    assert chosen["test_drop_points"] == pytest.approx(1.9)
    assert chosen["cluster_efficiency"] == 51.0
    assert chosen["conv_kernel_efficiency"] == 85.0  # 1020 conv kernels / (4 + 8)
    assert chosen["meets_target"]


@pytest.mark.parametrize(("accuracy", "synaptic", "kernels"), [
    (0.959, 160.0, 30),   # 2.1 points under on test
    (0.961, 149.0, 30),   # under 150× synaptic
    (0.961, 160.0, 32),   # 1530 / 32 = 47.8× cluster
])
def test_a_member_short_of_any_one_figure_misses_the_target(accuracy, synaptic, kernels):
    records = [ANCESTOR, _member("g08-m00", 8, accuracy, 0.955, synaptic, kernels)]
    assert not chosen_member(records, 0.02)["meets_target"]


def test_with_no_offspring_within_the_drop_on_validation_the_ancestor_is_chosen():
    chosen = chosen_member([ANCESTOR, _member("g02-m00", 2, 0.97, 0.949, 2.0, 800)], 0.02)
    assert (chosen["id"], chosen["test_drop_points"], chosen["meets_target"]) == ("g01-m00", 0.0, False)


def test_mean_spread_is_the_sample_standard_deviation():
    assert mean_spread([1.0, 2.0, 3.0]) == {"mean": 2.0, "sd": 1.0, "min": 1.0, "max": 3.0, "n": 3}
    assert mean_spread([5.0])["sd"] == 0.0


def test_a_cell_summarises_its_seeds_at_the_report_generation():
    seed_a = [ANCESTOR, _member("g02-m00", 2, 0.96, 0.955, 160.0, 30),
              _member("g02-m01", 2, 0.94, 0.94, 250.0, 20)]
    seed_b = [ANCESTOR, _member("g02-m00", 2, 0.95, 0.945, 100.0, 51)]
    summary = cell_summary([seed_a, seed_b], 0.02, generation=2)
    assert (summary["seeds"], summary["seeds_meeting_target"]) == (2, 1)
    # seed a chooses g02-m00: 2 points under on test (at the limit), 160×, 51×; seed b's only
    # offspring is 2.5 points under on validation, so it chooses its ancestor (1×)
    # sd: 79.5 · √2 = 112.43
    assert summary["chosen"]["synaptic_efficiency"] == {"mean": 80.5, "sd": 112.43, "min": 1.0,
                                                        "max": 160.0, "n": 2}
    population = summary["population_at_generation_2"]
    # seed a's population mean accuracy 0.95, seed b's 0.95; geometric mean of 160 and 250: 200
    assert population["mean_accuracy"]["mean"] == 0.95
    assert population["mean_synaptic_efficiency"]["max"] == 200.0


def test_the_structure_benchmark_shrinks_an_untrained_ancestor_and_prints_json(tmp_path):
    """tools/bench_seed000_structure.py on a freshly initialised LeNet-5 (the structure needs no
    training): every generation is smaller than the ancestor, 1,530 kernels at most."""
    import json
    import os
    import subprocess

    from jetsynth.core.genome import ancestor_genome, save_genome

    save_genome(ancestor_genome("lenet5", (1, 28, 28), 10, seed=0), tmp_path / "g01-m00")
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, str(root / "tools" / "bench_seed000_structure.py"), "--ancestor",
               str(tmp_path / "g01-m00"), "--settings", "kernel:1.0:0.5:0", "--population", "3",
               "--parents", "2", "--generations", "3", "--seeds", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(done.stdout)["settings"]["kernel:1.0:0.5:0"]["generations"]
    assert [row["generation"] for row in rows] == [2, 3]
    assert all(row["synaptic_efficiency"]["mean"] > 1.0 for row in rows)
    assert rows[1]["cluster_efficiency"]["mean"] > rows[0]["cluster_efficiency"]["mean"]


def test_a_folder_without_a_genome_is_one_clear_error(tmp_path):
    import subprocess

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(root / "tools" / "bench_seed000_structure.py"),
                           "--ancestor", str(tmp_path)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: ")
    assert len(done.stderr.strip().splitlines()) == 1


def test_each_generation_gets_its_geometric_mean_conv_kernel_efficiency():
    records = [ANCESTOR, _member("g02-m00", 2, 0.96, 0.955, 160.0, 30, conv=(4, 1)),
               _member("g02-m01", 2, 0.94, 0.94, 250.0, 30, conv=(4, 16))]
    rows = with_conv_kernels([{"generation": 1}, {"generation": 2}], records)
    # 1020 / 5 = 204 and 1020 / 20 = 51: geometric mean √(204 · 51) = 102
    assert [row["mean_conv_kernel_efficiency"] for row in rows] == [1.0, 102.0]
