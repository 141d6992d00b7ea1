"""The picture of a calibration: predicted against measured FPS for every network of the sweep,
so a glance shows where the latency model can be trusted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jetsynth.calibration.model import HOLDOUT_EVERY, LatencyModel
from jetsynth.run.calibrate import Sample


def calibration_figure(samples: list[Sample], model: LatencyModel):
    """A log-log scatter of measured vs predicted FPS (one colour per architecture; hollow: the
    networks held out of the fit that estimates the error on unseen networks) with the line of
    perfect agreement, ±10 %, and the held-out error in the title."""
    from jetsynth.report.plotting import count_label, pyplot, readable_log

    plt = pyplot()
    timed = [s for s in samples if s.fps]
    held = held_out(timed)
    fig, ax = plt.subplots(figsize=(6.5, 6))
    for colour, arch in enumerate(sorted({s.variant.arch for s in timed})):
        for out in (False, True):
            chosen = [s for i, s in enumerate(timed) if s.variant.arch == arch and (i in held) == out]
            if chosen:
                ax.scatter([s.fps for s in chosen], [model.fps(s.layers) for s in chosen], s=30,
                           facecolors="none" if out else f"C{colour}", edgecolors=f"C{colour}",
                           linewidths=1.2, label=f"{arch}, held out" if out else f"{arch}, fitted")
    span = np.array([min(s.fps for s in timed) * 0.8, max(s.fps for s in timed) * 1.25])
    ax.plot(span, span, color="black", linewidth=0.8, label="predicted = measured")
    ax.fill_between(span, span * 0.9, span * 1.1, color="grey", alpha=0.2, label="±10 %")
    ax.set_xscale("log")
    ax.set_yscale("log")
    readable_log(ax.xaxis, count_label)
    readable_log(ax.yaxis, count_label)
    ax.set_xlabel(f"measured FPS ({model.device}, {model.precision}, batch {model.batch})")
    ax.set_ylabel("predicted FPS (latency model)")
    holdout = model.error.get("holdout")
    heading = f"Latency model of {model.device}: predicted vs measured"
    if holdout:
        heading += (f"\nheld-out median error {100 * holdout['median']:.1f} %, max "
                    f"{100 * holdout['max']:.1f} % ({holdout['count']} networks)")
    ax.set_title(heading, fontsize=10)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def held_out(timed: list[Sample]) -> set[int]:
    """Indices (among the timed samples, in sweep order) of those the held-out fit left out."""
    return {i for i in range(len(timed)) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1}


def write_calibration_plot(samples: list[Sample], model: LatencyModel, path: Path) -> Path:
    from jetsynth.report.plotting import save

    return save(calibration_figure(samples, model), path)
