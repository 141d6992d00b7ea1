"""The benchmark scripts' shared choice (tools/common.py): the validation floor a member needs,
and a run without a validation split choosing nothing rather than looking at test."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from common import best_within, validation_floor  # noqa: E402

ANCESTOR = {"id": "g01-m00", "accuracy": 0.98, "val_accuracy": 0.97, "synaptic_efficiency": 1.0,
            "kernels": 100}


def test_the_floor_is_the_ancestor_s_validation_accuracy_less_the_drop():
    assert validation_floor(ANCESTOR, 0.02) == pytest.approx(0.95)
    assert validation_floor({**ANCESTOR, "val_accuracy": None}, 0.02) is None


def test_no_floor_chooses_no_member():
    assert best_within([ANCESTOR], None, ANCESTOR, on="val_accuracy") is None
    assert best_within([ANCESTOR], 0.95, ANCESTOR, on="val_accuracy")["id"] == "g01-m00"
