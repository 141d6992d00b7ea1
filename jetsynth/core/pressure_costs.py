"""What one synapse of each layer costs, for the cost-aware environmental pressure
(`--pressure-on`): its multiply-accumulates per image here; its share of the calibrated latency
model's terms on the bench target in `calibration.costs` (a cost per layer either way, which is
all synthesis needs).
"""

from __future__ import annotations

from jetsynth.nn.structure import Topology

PRESSURE_ON = ("synapses", "macs", "latency")


def mac_costs(topology: Topology) -> dict[str, float]:
    """Multiply-accumulates per image of one synapse of each layer: a conv's output positions,
    1 for a linear layer."""
    return {layer.name: float(layer.out_positions) for layer in topology.layers}
