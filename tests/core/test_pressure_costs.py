import pytest
import torch

from jetsynth.calibration.costs import latency_costs
from jetsynth.calibration.features import FEATURES
from jetsynth.calibration.model import LatencyModel
from jetsynth.core.genome import Lineage, ancestor_genome
from jetsynth.core.pressure_costs import mac_costs
from jetsynth.core.synthesis import SynthesisConfig, synthesize

CHILD = Lineage("g02-m00", 2, 0, ("g01-m00",))


@pytest.fixture(scope="module")
def parent():
    return ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)


def _model(batch=1):
    weights = {"query": 0.0, "operators": 0.0, "weights": 1.0, "conv_macs": 2.0, "gemm_macs": 3.0,
               "im2col": 5.0, "activations": 7.0}
    return LatencyModel("ort-cpu", "ort-cpu", "fp32", batch, tuple(weights[f] for f in FEATURES),
                        30, {})


def test_mac_costs_are_output_positions(parent):
    # LeNet-5 on 28x28: conv1 writes 24x24, conv2 8x8, the linear layers 1
    assert mac_costs(parent.topology) == {"0": 576.0, "3": 64.0, "7": 1.0, "9": 1.0}


def test_latency_costs_by_hand(parent):
    costs = latency_costs(_model(), parent.topology)
    # conv1 (20 filters, 1 input, 5x5, 576 positions): MACs 2*576, im2col 5*576/20,
    # outputs 7*576/25, weight 1
    assert costs["0"] == pytest.approx(2 * 576 + 5 * 576 / 20 + 7 * 576 / 25 + 1)
    # fc2 (10 x 500): MAC 3, outputs 7/500, weight 1
    assert costs["9"] == pytest.approx(3 + 7 / 500 + 1)
    # per-image terms grow with the calibrated batch, the weight term does not
    assert latency_costs(_model(batch=4), parent.topology)["9"] == pytest.approx(4 * (3 + 7 / 500) + 1)


def test_latency_pressure_with_mac_costs_is_mac_pressure(parent):
    def draw(**fields):
        config = SynthesisConfig(cluster="filter", keep=0.5, cluster_pressure=0.9, **fields)
        return synthesize(parent, config, torch.Generator().manual_seed(0), CHILD).masks

    costs = tuple(sorted(mac_costs(parent.topology).items()))
    by_macs = draw(pressure_on="macs")
    by_latency = draw(pressure_on="latency", layer_costs=costs)
    assert all(torch.equal(by_macs[k], by_latency[k]) for k in by_macs)
