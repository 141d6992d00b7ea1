"""Size figures of a genome and its efficiency relative to the ancestor (seed 001's tables).

synapses: live conv/linear weights. clusters: live clusters in the run's --cluster mode (conv
kernels or filters; linear layers count neurons). kernels: live conv kernels and linear neurons
(seed 001's unit, whatever the mode). units: live filters/neurons. macs: multiply-accumulates per
image of the *compacted* dense network, the figure speed follows on a GPU without sparse kernels.
"""

from __future__ import annotations

from .compact import alive_outputs
from .genome import Genome
from .network import cluster_view


def size_metrics(genome: Genome, mode: str = "kernel") -> dict:
    layers = genome.layers
    outs = alive_outputs(genome.masks, layers)
    per_layer = []
    previous = None
    for layer, out_idx in zip(layers, outs, strict=False):
        mask = genome.masks[layer.name]
        n_in = layer.in_units if previous is None else previous
        per_layer.append(
            {
                "name": layer.name,
                "synapses": int(mask.sum()),
                "clusters": int(cluster_view(mask, layer, mode).any(dim=1).sum()),
                "kernels": int(cluster_view(mask, layer, "kernel").any(dim=1).sum()),
                "units": int(len(out_idx)),
                "macs": int(len(out_idx) * n_in * layer.kernel * layer.out_positions),
            }
        )
        previous = len(out_idx)
    totals = {key: sum(entry[key] for entry in per_layer)
              for key in ("synapses", "clusters", "kernels", "units", "macs")}
    return {**totals, "layers": per_layer}


def _ratio(before: int, after: int) -> float:
    return float(before) / after if after else float("inf")


def efficiency(ancestor: dict, current: dict) -> dict:
    """Seed 001's efficiencies: ancestor count / current count, overall and per layer."""
    return {
        "synaptic_efficiency": _ratio(ancestor["synapses"], current["synapses"]),
        "cluster_efficiency": _ratio(ancestor["clusters"], current["clusters"]),
        "mac_reduction": _ratio(ancestor["macs"], current["macs"]),
        "layer_cluster_efficiency": [
            _ratio(a["clusters"], c["clusters"])
            for a, c in zip(ancestor["layers"], current["layers"], strict=False)
        ],
        "layer_synaptic_efficiency": [
            _ratio(a["synapses"], c["synapses"])
            for a, c in zip(ancestor["layers"], current["layers"], strict=False)
        ],
    }
