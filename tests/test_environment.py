import math

import pytest
import torch

from jetsynth.environment import expected_survivors, layer_factor, layer_targets


def test_equal_rates_when_balance_is_zero():
    assert layer_targets([100, 100], [0, 0], keep=0.5, balance=0.0) == pytest.approx([50, 50])


def test_equal_counts_when_balance_is_one():
    assert layer_targets([100, 300], [0, 0], keep=0.5, balance=1.0) == pytest.approx([100, 100])


def test_square_root_balance_by_hand():
    # T = F * sqrt(n) = [10F, 20F], 30F = 250 -> F = 25/3
    targets = layer_targets([100, 400], [0, 0], keep=0.5, balance=0.5)
    assert targets == pytest.approx([250 / 3, 500 / 3])


def test_floor_protects_small_layer_and_budget_still_holds():
    targets = layer_targets([100, 100], [80, 0], keep=0.5, balance=0.0)
    assert targets == pytest.approx([80, 20])
    assert sum(targets) == pytest.approx(100)


def test_floors_win_when_budget_is_too_small():
    assert layer_targets([10, 10], [8, 8], keep=0.1, balance=0.0) == [8.0, 8.0]


def test_layer_factor_by_hand():
    # for sqrt(F) <= 1: expected = sum_c sqrt(F)*1 * (2 * 0.5 sqrt(F)) = 2F -> F = 0.5 for 1
    p_cluster = torch.tensor([1.0, 1.0])
    p_synapse = torch.full((2, 2), 0.5)
    factor = layer_factor(p_cluster, p_synapse, target=1.0)
    assert factor == pytest.approx(0.5, rel=1e-6)
    assert expected_survivors(p_cluster, p_synapse, factor) == pytest.approx(1.0)


def test_layer_factor_saturates_and_can_exceed_one():
    p_cluster = torch.tensor([math.exp(-1), 1.0])
    p_synapse = torch.full((2, 3), math.exp(-1))
    assert math.isinf(layer_factor(p_cluster, p_synapse, target=6))
    factor = layer_factor(p_cluster, p_synapse, target=5)
    assert factor > 1
    assert expected_survivors(p_cluster, p_synapse, factor) == pytest.approx(5, rel=1e-6)
