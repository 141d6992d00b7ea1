"""Seed 002's table chooses each generation's best member on validation and reports its test
accuracy (tools/bench_seed002_tagging.py), on hand-made records whose best on test and best on
validation differ."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from bench_seed002_tagging import table_rows  # noqa: E402


def _member(id_, accuracy, val, synaptic, kernels=100):
    return {"id": id_, "generation": int(id_[1:3]), "accuracy": accuracy, "val_accuracy": val,
            "synaptic_efficiency": synaptic, "kernels": kernels}


RECORDS = [
    _member("g01-m00", 0.98, 0.97, 1.0, kernels=1000),
    # within 2 points on test (0.975), 2.5 under on validation: never the best
    _member("g02-m00", 0.975, 0.945, 16.0, kernels=50),
    # 2.1 points under on test, 1 under on validation
    _member("g02-m01", 0.959, 0.96, 4.0, kernels=200),
]


def test_each_generation_s_best_is_chosen_on_validation_beside_its_overlap():
    rows = table_rows(RECORDS, {1: 1.0, 2: 0.80345})
    assert [row["best"]["id"] for row in rows] == ["g01-m00", "g02-m01"]
    best = rows[1]["best"]
    assert (best["accuracy"], best["val_accuracy"], best["cluster_efficiency"]) == (0.959, 0.96, 5.0)
    # population figures stay on test: mean (0.975 + 0.959) / 2, geometric mean of 16 and 4
    assert (rows[1]["mean_accuracy"], rows[1]["mean_synaptic_efficiency"]) == (0.967, 8.0)
    assert rows[1]["average_overlap"] == 0.8034


def test_without_a_validation_split_no_generation_has_a_best():
    rows = table_rows([{**r, "val_accuracy": None} for r in RECORDS], {1: 1.0, 2: 0.8})
    assert [row["best"] for row in rows] == [None, None]
