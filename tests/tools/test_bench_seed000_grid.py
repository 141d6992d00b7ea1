"""Seed 000's grid chooses its reported member on validation and checks the paper's target on
test (tools/bench_seed000_grid.py), with hand-computed figures."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from bench_seed000_grid import cell_summary, chosen_member  # noqa: E402
from common import mean_spread  # noqa: E402


def _member(id_, generation, accuracy, val, synaptic, kernels):
    return {"id": id_, "generation": generation, "accuracy": accuracy, "val_accuracy": val,
            "synaptic_efficiency": synaptic, "kernels": kernels}


ANCESTOR = _member("g01-m00", 1, 0.98, 0.97, 1.0, 1530)


def test_the_member_is_chosen_on_validation_and_its_test_drop_reported():
    records = [
        ANCESTOR,
        # best on test, but 2.5 points under the ancestor on validation: never chosen
        _member("g09-m00", 9, 0.975, 0.945, 400.0, 20),
        # 1.5 points under on validation; test 0.961: 1.9 points under, 1530 / 30 = 51×
        _member("g08-m01", 8, 0.961, 0.955, 160.0, 30),
        _member("g07-m00", 7, 0.97, 0.965, 90.0, 45),
    ]
    chosen = chosen_member(records, 0.02)
    assert chosen["id"] == "g08-m01"
    assert chosen["test_drop_points"] == pytest.approx(1.9)
    assert chosen["cluster_efficiency"] == 51.0
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
    assert (summary["seeds"], summary["seeds_with_a_member_within_drop"],
            summary["seeds_meeting_target"]) == (2, 1, 1)
    # seed a's chosen member: 2 points under on test (at the limit), 160×, 51×; seed b has none
    assert summary["chosen"]["synaptic_efficiency"]["mean"] == 160.0
    population = summary["population_at_generation_2"]
    # seed a's population mean accuracy 0.95, seed b's 0.95; geometric mean of 160 and 250: 200
    assert population["mean_accuracy"]["mean"] == 0.95
    assert population["mean_synaptic_efficiency"]["max"] == 200.0
