"""What one synapse of each layer costs in latency on the bench target, for `--pressure-on
latency`: its share of the calibrated latency model's terms.

The latency model predicts seconds per query as a weighted sum of per-query terms (a weight
element read once per query) and per-image terms (conv and fully-connected MACs, the
convolutions' unfolded input elements, every operator's output elements). A synapse of layer l
carries: its weight (w_weights), its MACs (positions × w_conv_macs, or w_gemm_macs), and its
share of the layer's unfolded input (im2col = in_units·kernel·positions spread over
out_units·in_units·kernel synapses: positions / out_units × w_im2col) and of its outputs
(out_units·positions over the same synapses: positions / (in_units·kernel) × w_activations),
the per-image terms times the model's batch. Units: seconds per query; only ratios matter.
"""

from __future__ import annotations

from jetsynth.calibration.model import LatencyModel
from jetsynth.nn.structure import Topology


def latency_costs(model: LatencyModel, topology: Topology) -> dict[str, float]:
    """Seconds per query that one synapse of each layer adds under `model` (see the module docstring)."""
    weight = dict(zip(model.features, model.coefficients, strict=True))
    costs = {}
    for layer in topology.layers:
        positions = float(layer.out_positions)
        fan_in = max(layer.in_units * layer.kernel, 1)
        if layer.kind == "conv":
            per_image = (weight.get("conv_macs", 0.0) * positions
                         + weight.get("im2col", 0.0) * positions / max(layer.out_units, 1))
        else:
            per_image = weight.get("gemm_macs", 0.0) * positions
        per_image += weight.get("activations", 0.0) * positions / fan_in
        costs[layer.name] = model.batch * per_image + weight.get("weights", 0.0)
    return costs
