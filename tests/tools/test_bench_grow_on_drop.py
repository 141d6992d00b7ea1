"""The grow-on-drop benchmark chooses its best offspring on validation, reports its test
accuracy and whether a repair made it, and counts the repairs a run's events.jsonl records
(tools/bench_grow_on_drop.py), on hand-made records and a real events file."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from bench_grow_on_drop import summary  # noqa: E402

from jetsynth.storage import append_jsonl  # noqa: E402


def _member(id_, accuracy, val, synaptic, kernels=100, repair=None):
    record = {"id": id_, "generation": int(id_[1:3]), "accuracy": accuracy, "val_accuracy": val,
              "synaptic_efficiency": synaptic, "kernels": kernels}
    if repair is not None:
        record["repair"] = repair
    return record


RECORDS = [
    _member("g01-m00", 0.94, 0.95, 1.0, kernels=1000),
    # best on test and most efficient, but 3 points under on validation
    _member("g02-m00", 0.945, 0.92, 3.0),
    # 1 point under on validation, repaired; 2.5 points under on test
    _member("g02-m01", 0.915, 0.94, 2.0, kernels=250, repair={"kept": True}),
    _member("g02-m02", 0.93, 0.945, 1.5, repair={"kept": False}),
]


def test_the_best_offspring_is_chosen_on_validation_and_its_repair_reported(tmp_path):
    append_jsonl(tmp_path / "events.jsonl", {"event": "repair", "member": "g02-m01", "kept": True})
    append_jsonl(tmp_path / "events.jsonl", {"event": "repair", "member": "g02-m02", "kept": False})
    append_jsonl(tmp_path / "events.jsonl", {"event": "generation", "generation": 2})
    result = summary(RECORDS, tmp_path)
    assert result["best_within_2_points"] == {
        "id": "g02-m01", "accuracy": 0.915, "val_accuracy": 0.94, "synaptic_efficiency": 2.0,
        "cluster_efficiency": 4.0, "repaired": True}
    assert (result["ancestor_accuracy"], result["ancestor_val_accuracy"]) == (0.94, 0.95)
    # counted on test (reported, not chosen): 0.945 and 0.93 are within 2 points of 0.94
    assert result["within_2_points_per_generation"] == {2: 2}
    assert result["mean_accuracy_per_generation"] == {1: 0.94, 2: 0.93}
    assert (result["repairs_tried"], result["repairs_kept"]) == (2, 1)


def test_the_ancestor_is_never_the_best_offspring(tmp_path):
    result = summary([RECORDS[0], _member("g02-m00", 0.94, 0.90, 3.0)], tmp_path)
    assert result["best_within_2_points"] is None
    assert result["repairs_tried"] == 0
