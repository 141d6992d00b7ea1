"""Parent selection's table chooses its members on validation and reports their test accuracy
(tools/bench_selection.py), on hand-made records whose best on test and best on validation
differ."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from bench_selection import policy_summary  # noqa: E402


def _member(id_, accuracy, val, synaptic, kernels=100):
    return {"id": id_, "generation": int(id_[1:3]), "accuracy": accuracy, "val_accuracy": val,
            "synaptic_efficiency": synaptic, "kernels": kernels}


ANCESTOR = _member("g01-m00", 0.98, 0.97, 1.0, kernels=1000)
RECORDS = [
    ANCESTOR,
    # best on test at every floor, but 2.5 points under the ancestor on validation
    _member("g06-m00", 0.979, 0.945, 300.0),
    # 1.5 points under on validation (test 0.955: 2.5 under, reported as it is)
    _member("g05-m01", 0.955, 0.955, 120.0, kernels=40),
    # 0.5 points under on validation
    _member("g04-m02", 0.96, 0.965, 60.0, kernels=50),
]


def test_the_members_within_1_and_2_points_are_chosen_on_validation():
    summary = policy_summary(RECORDS)
    within_1, within_2 = summary["best_within_1_point"], summary["best_within_2_points"]
    assert (within_1["id"], within_1["accuracy"], within_1["val_accuracy"]) == ("g04-m02", 0.96, 0.965)
    assert within_1["cluster_efficiency"] == 20.0  # 1000 / 50 kernels
    assert (within_2["id"], within_2["accuracy"], within_2["val_accuracy"]) == ("g05-m01", 0.955, 0.955)


def test_the_front_is_drawn_on_validation_and_reports_test():
    front = policy_summary(RECORDS)["pareto_front"]
    # on test g06-m00 (0.979 at 300x) would dominate g05-m01 and g04-m02; on validation each of
    # the four trades accuracy for efficiency
    assert [p["id"] for p in front] == ["g06-m00", "g05-m01", "g04-m02", "g01-m00"]
    assert front[1] == {"id": "g05-m01", "accuracy": 0.955, "val_accuracy": 0.955,
                        "synaptic_efficiency": 120.0}


def test_a_run_without_a_validation_split_chooses_nothing():
    records = [{**r, "val_accuracy": None} for r in RECORDS]
    summary = policy_summary(records)
    assert summary == {"best_within_1_point": None, "best_within_2_points": None, "pareto_front": []}
