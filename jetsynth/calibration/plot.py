"""The picture of a calibration: predicted against measured FPS for every network of the sweep,
so a glance shows where the latency model can be trusted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .model import LatencyModel
from .procedure import Sample


def write_calibration_plot(samples: list[Sample], model: LatencyModel, path: Path) -> Path:
    """A log-log scatter of measured vs predicted FPS (one colour per architecture) with the line
    of perfect agreement, ±10 %, and the held-out error in the title."""
    from ..plotting import pyplot

    plt = pyplot()
    timed = [s for s in samples if s.fps]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for colour, arch in enumerate(sorted({s.variant.arch for s in timed})):
        chosen = [s for s in timed if s.variant.arch == arch]
        ax.scatter([s.fps for s in chosen], [model.fps(s.layers) for s in chosen], s=22,
                   color=f"C{colour}", label=arch)
    span = np.array([min(s.fps for s in timed) * 0.8, max(s.fps for s in timed) * 1.25])
    ax.plot(span, span, color="black", linewidth=0.8, label="predicted = measured")
    ax.fill_between(span, span * 0.9, span * 1.1, color="grey", alpha=0.2, label="±10 %")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"measured FPS ({model.device}, {model.precision}, batch {model.batch})")
    ax.set_ylabel("predicted FPS (latency model)")
    holdout = model.error.get("holdout")
    if holdout:
        ax.set_title(f"held-out median error {100 * holdout['median']:.1f} %", fontsize=9)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
