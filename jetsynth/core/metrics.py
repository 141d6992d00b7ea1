"""Size figures of a genome and its efficiency relative to the ancestor (seed 001's tables).

synapses: live conv/linear weights. clusters: live clusters in the run's --cluster mode (conv
kernels or filters; linear layers count neurons). kernels: live conv kernels and linear neurons
(seed 001's unit, whatever the mode). units: live filters/neurons. macs: multiply-accumulates per
image of the *compacted* dense network, the figure speed follows on a GPU without sparse kernels.
"""

from __future__ import annotations

from jetsynth.core.genome import Genome
from jetsynth.nn.structure import cluster_view, live_channels, macs, row_alive


def size_metrics(genome: Genome, mode: str = "kernel") -> dict:
    """Per layer and in total. With filter clusters a layer counts its live filters; the run's
    `clusters` total counts, per channel space, the channels still written (a residual channel
    is one cluster however many layers write it), plus the output layer's classes."""
    topology = genome.topology
    layer_macs = macs(topology, genome.masks)
    per_layer = []
    for layer in topology.layers:
        mask = genome.masks[layer.name]
        units = layer.out_units if layer is topology.output else int(row_alive(mask, layer).sum())
        per_layer.append(
            {
                "name": layer.name,
                "synapses": int(mask.sum()),
                "clusters": int(cluster_view(mask, layer, mode).any(dim=1).sum()),
                "kernels": int(cluster_view(mask, layer, "kernel").any(dim=1).sum()),
                "units": units,
                "macs": layer_macs[layer.name],
                "kind": layer.kind,
            }
        )
    totals = {key: sum(entry[key] for entry in per_layer)
              for key in ("synapses", "clusters", "kernels", "units", "macs")}
    if mode == "filter":
        output = topology.output
        totals["clusters"] = (sum(int(flags.sum()) for flags in live_channels(topology, genome.masks))
                              + int(row_alive(genome.masks[output.name], output).sum()))
    return {**totals, "layers": per_layer}


def _ratio(before: int, after: int) -> float:
    return float(before) / after if after else float("inf")


def efficiency(base: dict, current: dict) -> dict:
    """Seed 001's efficiencies: ancestor count / current count, overall and per layer; `base` and
    `current` are size figures as `size_metrics` gives them (the ancestor's: `base`)."""
    return {
        "synaptic_efficiency": _ratio(base["synapses"], current["synapses"]),
        "cluster_efficiency": _ratio(base["clusters"], current["clusters"]),
        "mac_reduction": _ratio(base["macs"], current["macs"]),
        "layer_cluster_efficiency": [
            _ratio(a["clusters"], c["clusters"])
            for a, c in zip(base["layers"], current["layers"], strict=False)
        ],
        "layer_synaptic_efficiency": [
            _ratio(a["synapses"], c["synapses"])
            for a, c in zip(base["layers"], current["layers"], strict=False)
        ],
    }


CHANCE_MARGIN = 0.05
"""Share of the way from chance to perfect accuracy an ancestor must get to count as learned."""


def chance_accuracy(counts: list[int]) -> float:
    """The accuracy of always answering the most common class, from the labels' counts per
    class: what a network that learned nothing scores (0.1 on ten balanced classes)."""
    total = sum(counts)
    return max(counts) / total if total else 0.0


def at_chance(accuracy: float, chance: float) -> bool:
    """Whether `accuracy` is within CHANCE_MARGIN of the way from `chance` to 1 (on ten balanced
    classes: below 0.1 + 0.9 × 0.05 = 0.145)."""
    return accuracy < chance + (1.0 - chance) * CHANCE_MARGIN
