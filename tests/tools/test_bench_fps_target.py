"""The closed-loop benchmark holds its accuracy floor on validation, as the run does, and
reports the chosen member's test accuracy (tools/bench_fps_target.py), on hand-made records
whose best on test and best on validation differ."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from bench_fps_target import outcome  # noqa: E402


def _member(id_, accuracy, val, fps, mac_reduction=1.0):
    return {"id": id_, "generation": int(id_[1:3]), "accuracy": accuracy, "val_accuracy": val,
            "fps": fps, "mac_reduction": mac_reduction, "bench": {"source": "measured"}}


RECORDS = [
    _member("g01-m00", 0.985, 0.984, 10_000.0),
    # above the floor on test only: the fastest, never chosen
    _member("g02-m00", 0.982, 0.975, 50_000.0, mac_reduction=6.0),
    # above the floor on validation only: chosen, its test accuracy reported as it is
    _member("g02-m01", 0.978, 0.981, 30_000.0, mac_reduction=4.0),
]


def test_the_floor_is_held_on_validation_and_test_is_reported():
    result = outcome(RECORDS, floor=0.98, target=40_000.0)
    assert (result["member"], result["accuracy"], result["val_accuracy"]) == ("g02-m01", 0.978, 0.981)
    figures = (result["fps_at_floor"], result["speedup_at_floor"], result["mac_reduction"])
    assert figures == (30_000.0, 3.0, 4.0)
    assert result["target_reached_in_generation"] is None  # 50,000 FPS only below the floor
    assert result["ancestor"] == {"accuracy": 0.985, "val_accuracy": 0.984, "fps": 10_000.0}


def test_a_run_without_a_validation_split_holds_the_floor_on_test():
    result = outcome([{**r, "val_accuracy": None} for r in RECORDS], floor=0.98, target=40_000.0)
    assert (result["member"], result["target_reached_in_generation"]) == ("g02-m00", 2)
