"""The export-speed benchmark times each generation's most accurate member on validation, not
on test (tools/bench_export_speed.py), on hand-made records whose best on test and best on
validation differ."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from bench_export_speed import most_accurate  # noqa: E402


def _member(id_, accuracy, val):
    return {"id": id_, "generation": int(id_[1:3]), "accuracy": accuracy, "val_accuracy": val}


def test_each_generation_s_member_is_the_most_accurate_on_validation():
    records = [_member("g01-m00", 0.98, 0.97),
               _member("g02-m00", 0.975, 0.95),   # best on test
               _member("g02-m01", 0.96, 0.965)]   # best on validation
    assert [r["id"] for r in most_accurate(records)] == ["g01-m00", "g02-m01"]


def test_a_run_without_a_validation_split_falls_back_to_test():
    records = [_member("g01-m00", 0.98, None), _member("g02-m00", 0.975, None),
               _member("g02-m01", 0.96, None)]
    assert [r["id"] for r in most_accurate(records)] == ["g01-m00", "g02-m00"]
