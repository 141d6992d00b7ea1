import math

import pytest
import torch

from jetsynth.core.environment import (
    adaptive_keep,
    cost_targets,
    expected_survivors,
    layer_factors,
    layer_targets,
)


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


def test_layer_factors_by_hand():
    # two clusters of two synapses; n = 4, T = 1, a = 0.5 -> cluster stage aims at 4*(1/4)^0.5 = 2:
    # 2*min(1, F_c) + 2*min(1, 0.5 F_c) = 3 F_c = 2 -> F_c = 2/3; clusters survive at 2/3, 1/3;
    # synapse stage: (2/3 + 1/3) * 2 * 0.5 F_s = 1 -> F_s = 1
    p_cluster = torch.tensor([1.0, 0.5])
    p_synapse = torch.full((2, 2), 0.5)
    f_cluster, f_synapse = layer_factors(p_cluster, p_synapse, target=1.0, cluster_pressure=0.5)
    assert f_cluster == pytest.approx(2 / 3, rel=1e-6)
    assert f_synapse == pytest.approx(1.0, rel=1e-6)
    assert expected_survivors(p_cluster, p_synapse, f_cluster, f_synapse) == pytest.approx(1.0)


def test_all_pressure_on_clusters_keeps_survivors_whole():
    p_cluster = torch.tensor([1.0, 0.5])
    p_synapse = torch.full((2, 2), 0.5)
    f_cluster, f_synapse = layer_factors(p_cluster, p_synapse, target=2.0, cluster_pressure=1.0)
    # 3 F_c = 2 -> F_c = 2/3; then every synapse of a surviving cluster lives (F_s = inf)
    assert f_cluster == pytest.approx(2 / 3, rel=1e-6)
    assert math.isinf(f_synapse)


def test_factors_saturate():
    p_cluster = torch.tensor([math.exp(-1), 1.0])
    p_synapse = torch.full((2, 3), math.exp(-1))
    assert all(math.isinf(f) for f in layer_factors(p_cluster, p_synapse, 6, 0.5))
    f_cluster, f_synapse = layer_factors(p_cluster, p_synapse, 5, 0.5)
    assert expected_survivors(p_cluster, p_synapse, f_cluster, f_synapse) == pytest.approx(5, rel=1e-6)


def test_adaptive_keep_by_hand():
    # half-way between floor and ancestor: a = 1/4 + 3/4 · 1/2 = 0.625; 200 of 400 FPS: s = 2
    keep, terms = adaptive_keep(0.8, 200.0, 400.0, 0.985, 0.98, 0.99)
    assert terms["speed_term"] == 2.0 and terms["accuracy_term"] == pytest.approx(0.625)
    assert keep == pytest.approx(0.8**1.25) == pytest.approx(0.75659, abs=1e-5)


def test_adaptive_keep_limits():
    assert adaptive_keep(0.8, 10.0, 400.0, 0.99, 0.98, 0.99)[1]["speed_term"] == 2.0
    assert adaptive_keep(0.8, 500.0, 400.0, 0.99, 0.98, 0.99)[0] == pytest.approx(0.8)
    at_floor, terms = adaptive_keep(0.8, 300.0, 400.0, 0.98, 0.98, 0.99)
    assert terms["accuracy_term"] == 0.25 and at_floor == pytest.approx(0.8 ** (0.25 * 4 / 3))
    below, terms = adaptive_keep(0.8, 300.0, 400.0, 0.97, 0.98, 0.99)
    assert below == 1.0 and terms["below_floor"]
    assert adaptive_keep(0.8, None, 400.0, 0.99, 0.98, 0.99)[1]["speed_term"] == 1.0
    assert adaptive_keep(0.8, 100.0, 400.0, 0.99, 0.995, 0.99)[0] == 1.0  # below the floor


def test_accuracy_led_pressure_by_hand():
    """No target: the pressure follows the best validation accuracy alone. Ancestor 0.99,
    floor 0.98 (--max-drop 0.01), --keep 0.5."""
    assert adaptive_keep(0.5, None, None, 0.99, 0.98, 0.99)[0] == pytest.approx(0.5)  # no loss yet
    assert adaptive_keep(0.5, None, None, 0.995, 0.98, 0.99)[0] == pytest.approx(0.5)  # above it
    # half the headroom left: a = 1/4 + 3/4 · 1/2 = 0.625 → 0.5^0.625 = 0.6484
    assert adaptive_keep(0.5, None, None, 0.985, 0.98, 0.99)[0] == pytest.approx(0.64842, abs=1e-5)
    # at the floor: a quarter of the pressure, 0.5^0.25 = 0.8409
    assert adaptive_keep(0.5, None, None, 0.98, 0.98, 0.99)[0] == pytest.approx(0.84090, abs=1e-5)
    assert adaptive_keep(0.5, None, None, 0.979, 0.98, 0.99)[0] == 1.0  # fell below: back off


def test_synapse_and_mac_budgets_choose_differently_by_hand():
    # layer A: 100 synapses costing 1 MAC each (a linear layer); layer B: 25 synapses costing 16
    # (a conv on a 4x4 output); keep 0.5, balance 0.5.
    # synapses: T = F*sqrt(n) = [10F, 5F], 15F = 62.5 -> F = 25/6 -> [41.67, 20.83]: A carries it.
    # macs: C = [100, 400], T_cost = F*sqrt(C) = [10F, 20F], 30F = 250 -> F = 25/3
    #       -> [83.33, 166.67] MACs = [83.33, 10.42] synapses: B, the expensive layer, carries it.
    synapses = layer_targets([100, 25], [0, 0], keep=0.5, balance=0.5)
    macs = cost_targets([100, 25], [0, 0], [1.0, 16.0], keep=0.5, balance=0.5)
    assert synapses == pytest.approx([250 / 6, 125 / 6])
    assert macs == pytest.approx([250 / 3, 500 / 3 / 16])
    assert synapses[0] < macs[0] and synapses[1] > macs[1]
    assert sum(t * c for t, c in zip(macs, [1, 16], strict=True)) == pytest.approx(0.5 * 500)


def test_unit_costs_are_the_synapse_budget():
    assert cost_targets([100, 400], [3, 0], [1.0, 1.0], 0.5, 0.5) == pytest.approx(
        layer_targets([100, 400], [3, 0], 0.5, 0.5))


def test_cost_budget_scales_base_and_floors_by_cost():
    # base 50 synapses of mean cost (100*1 + 25*16)/125 = 4 -> budget 0.5 * 200 = 100 MACs;
    # balance 0: equal rates, T_cost = F*[100, 400], 500F = 100 -> F = 0.2 -> [20, 5] synapses;
    # a floor of 10 synapses in B costs 160 > the budget: floors win.
    assert cost_targets([100, 25], [0, 0], [1.0, 16.0], 0.5, 0.0, base=50) == pytest.approx([20, 5])
    assert cost_targets([100, 25], [0, 10], [1.0, 16.0], 0.5, 0.0, base=50) == pytest.approx([0, 10])


def test_full_cluster_pressure_removes_whole_clusters_only():
    """Two clusters of two synapses, strengths 1 and 0.5, target 3 of the 4: F_c = 1 keeps the
    first cluster surely and the second with probability 0.5 (2 + 0.5·2 = 3), and the survivors
    are not thinned (F_s = ∞)."""
    p_cluster = torch.tensor([1.0, 0.5])
    p_synapse = torch.tensor([[1.0, 0.7], [0.9, 0.4]])
    f_cluster, f_synapse = layer_factors(p_cluster, p_synapse, 3.0, 1.0)
    assert f_cluster == pytest.approx(1.0, rel=1e-4)
    assert math.isinf(f_synapse)
