"""The run's plots (PNGs under RUN/report): accuracy and efficiencies per generation, per-layer
cluster efficiency, the environmental pressure, the similarity heatmap, seed 002's accuracy vs
storage and family tree, and the FPS/accuracy frontier.

Each plot is built by a `*_figure` function that returns the matplotlib figure (what the tests
read: titles, ticks, labels) and written by its `write_*` function. Every title names the run and
the dataset; see `plotting` for the shared conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jetsynth.core.frontier import pareto_front
from jetsynth.core.records import MemberRecord
from jetsynth.core.selection import selection_accuracy, speed
from jetsynth.report.plotting import (
    count_label,
    generation_colours,
    integer_ticks,
    label_points,
    layer_labels,
    line_styles,
    number_label,
    pyplot,
    readable_log,
    save,
    times_label,
    title,
)
from jetsynth.report.run_report import (
    PressureRow,
    _best_per_generation,
    has_fps,
    has_validation,
    run_floor,
)
from jetsynth.report.text import plot_text
from jetsynth.run.config import EvolveConfig

ANCESTOR_STYLE = {"color": "dimgray", "linestyle": ":", "linewidth": 1.2}
FLOOR_STYLE = {"color": "tab:red", "linestyle": "--", "linewidth": 1.0}
TARGET_STYLE = {"color": "tab:green", "linestyle": "--", "linewidth": 1.0}


def _report_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "report"


def member_panels(records: list[MemberRecord]) -> list[tuple[str, str, bool]]:
    """(record key, axis label, log scale) of the per-generation plots this run has."""
    panels = [
        ("accuracy", "test accuracy", False),
        ("synaptic_efficiency", "synaptic efficiency (ancestor / member)", True),
        ("cluster_efficiency", "cluster efficiency (ancestor / member)", True),
    ]
    if has_fps(records):
        panels.append(("fps", "measured throughput (images/s)", True))
    return panels


PANEL_TITLES = {
    "accuracy": "Test accuracy per generation",
    "synaptic_efficiency": "Synaptic efficiency per generation (fewer synapses)",
    "cluster_efficiency": "Cluster efficiency per generation (fewer clusters)",
    "fps": "Measured throughput per generation",
}


def member_figure(run_dir: Path, records: list[MemberRecord], key: str, label: str, log: bool,
                  config: EvolveConfig | None = None, floor: float | None = None,
                  target_fps: float | None = None):
    """One quantity per generation: every member a dot, the best member on validation a line,
    the ancestor's value a dotted line; the accuracy floor on the accuracy plot (it applies to
    validation accuracy, and says so) and the target on the throughput plot."""
    plt = pyplot()
    best = _best_per_generation(records)
    dots = [r for r in records if getattr(r, key) is not None]
    line = [r for r in best if getattr(r, key) is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([r.generation for r in dots], [getattr(r, key) for r in dots], s=16, alpha=0.5,
               label="members")
    ax.plot([r.generation for r in line], [getattr(r, key) for r in line], marker="o",
            label="best member on validation")
    ancestor = getattr(records[0], key)
    if ancestor is not None:
        shown = f"{ancestor:.4f}" if key == "accuracy" else (
            f"{ancestor:,.0f} images/s" if key == "fps" else f"{ancestor:g}×")
        ax.axhline(ancestor, label=f"ancestor ({shown})", **ANCESTOR_STYLE)
    if key == "accuracy" and floor is not None:
        ax.axhline(floor, label=f"accuracy floor {floor:.4f} (on validation)", **FLOOR_STYLE)
    if key == "fps" and target_fps:
        ax.axhline(target_fps, label=f"target {target_fps:,.0f} images/s", **TARGET_STYLE)
    if log:
        ax.set_yscale("log")
        readable_log(ax.yaxis, count_label if key == "fps" else times_label)
    integer_ticks(ax.xaxis)
    ax.set_xlabel("generation")
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    title(ax, PANEL_TITLES[key], run_dir, config)
    fig.tight_layout()
    return fig


def layer_figure(run_dir: Path, records: list[MemberRecord], config: EvolveConfig | None = None):
    """The best member's cluster efficiency per layer and generation, layers named as in the
    model, each line its own marker and dash (many overlap at 1× early on)."""
    plt = pyplot()
    best = _best_per_generation(records)
    labels = layer_labels(records[0].layers)
    if len(labels) > LINE_LAYERS:
        return _layer_heatmap(run_dir, best, labels, config)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = line_styles()
    for i, name in enumerate(labels):
        marker, dash = next(styles)
        ax.plot([r.generation for r in best], [r.layer_cluster_efficiency[i] for r in best],
                marker=marker, linestyle=dash, alpha=0.85, markersize=6, label=plot_text(name))
    ax.set_yscale("log")
    readable_log(ax.yaxis)
    integer_ticks(ax.xaxis)
    ax.set_xlabel("generation")
    ax.set_ylabel("cluster efficiency (ancestor / member)")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8, title="layer", title_fontsize=8)
    title(ax, "Cluster efficiency per layer (best member per generation)", run_dir, config)
    fig.tight_layout()
    return fig


LINE_LAYERS = 10
"""Up to this many layers, one line each (the markers and dashes stay distinct); beyond, a
heatmap with a row per layer, whose names stay readable for 20 to 60 layers."""


def _layer_heatmap(run_dir: Path, best: list[MemberRecord], labels: list[str], config: EvolveConfig | None):
    """Cluster efficiency per layer (rows, named as in the model) and generation (columns), on a
    log colour scale, the figure as tall as the layers need."""
    from matplotlib.colors import LogNorm

    plt = pyplot()
    values = np.array([[r.layer_cluster_efficiency[i] for r in best] for i in range(len(labels))])
    fig, ax = plt.subplots(figsize=(7, max(4.5, 1.6 + 0.2 * len(labels))))
    image = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="nearest",
                      norm=LogNorm(vmin=1.0, vmax=max(float(values.max()), 1.01)))
    ax.set_yticks(range(len(labels)), labels, fontsize=7 if len(labels) <= 40 else 6)
    ax.set_xticks(range(len(best)), [str(r.generation) for r in best])
    ax.set_xlabel("generation")
    bar = fig.colorbar(image, ax=ax)
    readable_log(bar.ax.yaxis)
    bar.set_label("cluster efficiency (ancestor / member)")
    title(ax, "Cluster efficiency per layer (best member per generation)", run_dir, config)
    fig.tight_layout()
    return fig


def write_plots(run_dir: Path, records: list[MemberRecord], config: EvolveConfig | None = None) -> list[Path]:
    """accuracy.png, synaptic_efficiency.png, cluster_efficiency.png (fps.png when timed) and
    layer_cluster_efficiency.png; `config` (the run's settings) adds the dataset to the titles,
    the accuracy floor and the target."""
    floor = run_floor(config, records) if config is not None else None
    target = config.target_fps if config is not None else None
    written = []
    for key, label, log in member_panels(records):
        fig = member_figure(run_dir, records, key, label, log, config, floor, target)
        written.append(save(fig, _report_dir(run_dir) / f"{key}.png", run_dir))
    written.append(save(layer_figure(run_dir, records, config),
                        _report_dir(run_dir) / "layer_cluster_efficiency.png", run_dir))
    return written


def pressure_figure(run_dir: Path, rows: list[PressureRow], config: EvolveConfig | None = None):
    """The pressure per generation above the accuracy it left and the size it reached."""
    plt = pyplot()
    generations = [r.generation for r in rows]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    top.step(generations, [r.keep for r in rows], where="mid", marker="o", color="tab:red")
    top.set_ylabel("keep share\n(lower = more pressure)")
    top.set_ylim(0, 1.05)
    middle.plot(generations, [r.best_val_accuracy for r in rows], marker="o",
                label="best member (validation)")
    middle.axhline(rows[0].floor, label=f"accuracy floor {rows[0].floor:.4f}", **FLOOR_STYLE)
    middle.set_ylabel("validation accuracy")
    middle.legend(fontsize=8)
    styles = line_styles()
    for key, label in (("synaptic_efficiency", "fewer synapses"), ("mac_reduction", "fewer MACs")):
        marker, dash = next(styles)
        points = [(r.generation, getattr(r, key)) for r in rows if getattr(r, key) is not None]
        bottom.plot([g for g, _ in points], [v for _, v in points], marker=marker, linestyle=dash,
                    label=label)
    bottom.axhline(1.0, label="ancestor (1×)", **ANCESTOR_STYLE)
    bottom.set_yscale("log")
    readable_log(bottom.yaxis)
    bottom.set_ylabel("smallest member at the floor\n(ancestor / member)")
    bottom.set_xlabel("generation")
    bottom.legend(fontsize=8)
    integer_ticks(bottom.xaxis)
    for ax in (top, middle, bottom):
        ax.grid(True, alpha=0.3, which="both")
    title(fig, "Environmental pressure per generation", run_dir, config)
    fig.tight_layout()
    return fig


def write_pressure_plot(run_dir: Path, rows: list[PressureRow], config: EvolveConfig | None = None) -> Path:
    return save(pressure_figure(run_dir, rows, config), _report_dir(run_dir) / "pressure.png", run_dir)


def similarity_figure(run_dir: Path, generation: int, ids: list[str], matrix: np.ndarray,
                      config: EvolveConfig | None = None):
    """The overlap matrix of a generation, its colour scale fitted to the values (overlaps of
    0.93 to 1 would all look the same on a 0-1 scale), each cell's value written in it."""
    plt = pyplot()
    size = max(6.0, 1.6 + 0.75 * len(ids))
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    between = matrix[~np.eye(len(ids), dtype=bool)] if len(ids) > 1 else matrix.ravel()
    low = float(np.floor(between.min() * 100) / 100)  # the diagonal (always 1) saturates the top
    high = float(between.max()) if between.max() > low else low + 0.01
    image = ax.imshow(matrix, vmin=low, vmax=high, cmap="viridis")
    shown = [plot_text(i) for i in ids]
    ax.set_xticks(range(len(ids)), shown, rotation=45, ha="right", fontsize=9)
    ax.set_yticks(range(len(ids)), shown, fontsize=9)
    ax.set_xlabel("member B")
    ax.set_ylabel("member A")
    middle = (low + high) / 2
    for i in range(len(ids)):
        for j in range(len(ids)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if matrix[i, j] < middle else "black")
    fig.colorbar(image, ax=ax, label="overlap |A∩B| / |A|", shrink=0.8,
                 extend="max" if matrix.max() > high else "neither")
    title(ax, f"Cluster overlap |A∩B| / |A| in generation {generation}\n(row: member A, "
              "column: member B)", run_dir, config)
    fig.tight_layout()
    return fig


def write_similarity_heatmap(run_dir: Path, generation: int, ids: list[str], matrix: np.ndarray,
                             config: EvolveConfig | None = None) -> Path:
    fig = similarity_figure(run_dir, generation, ids, matrix, config)
    return save(fig, _report_dir(run_dir) / f"similarity_g{generation:02d}.png", run_dir)


def storage_figure(run_dir: Path, records: list[MemberRecord], precision: str,
                   config: EvolveConfig | None = None):
    """Seed 002 Fig. 1: test accuracy vs storage of the live weights, one colour per generation."""
    plt = pyplot()
    bytes_per_weight = 2 if precision == "fp16" else 4
    colours = generation_colours([r.generation for r in records])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for generation, colour in colours.items():
        chosen = [r for r in records if r.generation == generation]
        ax.scatter([r.synapses * bytes_per_weight / 1024 for r in chosen],
                   [r.accuracy for r in chosen], color=colour, s=24, label=f"generation {generation}")
    ax.set_xscale("log")
    readable_log(ax.xaxis, number_label)
    ax.set_xlabel(f"storage of the live weights (KiB, {precision})")
    ax.set_ylabel("test accuracy")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2 if len(colours) > 6 else 1)
    title(ax, "Accuracy vs storage size (seed 002, Fig. 1)", run_dir, config)
    fig.tight_layout()
    return fig


def family_tree_figure(run_dir: Path, records: list[MemberRecord], config: EvolveConfig | None = None):
    """Each member a labelled node in its generation's row (colour: test accuracy), an edge to
    each parent."""
    plt = pyplot()
    position = {r.id: (r.member, -r.generation) for r in records}
    columns = max(r.member + 1 for r in records)
    rows = max(r.generation for r in records)
    fig, ax = plt.subplots(figsize=(max(7.0, 2.5 + 1.3 * columns), max(4.5, 1.5 + 0.8 * rows)))
    for record in records:
        x, y = position[record.id]
        for parent in record.parents:
            if parent in position:
                px, py = position[parent]
                ax.plot([px, x], [py, y], color="grey", alpha=0.5, linewidth=1.0, zorder=1)
    nodes = ax.scatter([position[r.id][0] for r in records],
                       [position[r.id][1] for r in records],
                       c=[r.accuracy for r in records], cmap="plasma", s=220, zorder=3,
                       edgecolors="black", linewidths=0.5)
    for record in records:
        x, y = position[record.id]
        ax.annotate(plot_text(record.id), (x, y), textcoords="offset points", xytext=(0, 11), ha="center",
                    fontsize=8, zorder=4)
    generations = sorted({r.generation for r in records})
    ax.set_yticks([-g for g in generations], [str(g) for g in generations])
    ax.set_xticks(range(columns))
    ax.set_xlim(-0.6, columns - 0.4)
    ax.set_ylim(-rows - 0.6, -0.4)
    ax.set_ylabel("generation")
    ax.set_xlabel("member")
    fig.colorbar(nodes, ax=ax, label="test accuracy")
    title(ax, "Family tree (edges to parents)", run_dir, config)
    fig.tight_layout()
    return fig


def write_population_plots(run_dir: Path, records: list[MemberRecord], precision: str,
                           config: EvolveConfig | None = None) -> list[Path]:
    """accuracy_vs_storage.png and family_tree.png."""
    return [save(storage_figure(run_dir, records, precision, config),
                 _report_dir(run_dir) / "accuracy_vs_storage.png", run_dir),
            save(family_tree_figure(run_dir, records, config), _report_dir(run_dir) / "family_tree.png",
                 run_dir)]


def frontier_figure(run_dir: Path, records: list[MemberRecord], floor: float,
                    target_fps: float | None = None, config: EvolveConfig | None = None):
    """Validation accuracy (what the floor and the front are about) vs speed of every member,
    each point labelled with its id (colour: generation, one per generation; hollow: predicted,
    not measured), the run's Pareto front as a step line, the accuracy floor and the target."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    timed = [r for r in records if r.fps or r.fps_predicted]
    colours = generation_colours([r.generation for r in timed])
    for generation, colour in colours.items():
        for measured in (True, False):
            chosen = [r for r in timed if r.generation == generation and bool(r.fps) == measured]
            if chosen:
                ax.scatter([speed(r) for r in chosen], [selection_accuracy(r) for r in chosen], s=34,
                           facecolors=colour if measured else "none", edgecolors=colour,
                           label=f"generation {generation}" + ("" if measured else " (predicted)"))
    front = pareto_front(records)
    ax.step([speed(r) for r in front], [selection_accuracy(r) for r in front],
            where="post", color="black", linewidth=1, label="frontier")
    ax.axhline(floor, label=f"accuracy floor {floor:.4f}", **FLOOR_STYLE)
    if target_fps:
        ax.axvline(target_fps, label=f"target {target_fps:,.0f} images/s", **TARGET_STYLE)
    ax.set_xscale("log")
    readable_log(ax.xaxis, count_label)
    label_points(ax, [speed(r) for r in timed], [selection_accuracy(r) for r in timed],
                 [plot_text(r.id) for r in timed])
    ax.set_xlabel("images per second")
    ax.set_ylabel("validation accuracy" if has_validation(records) else "test accuracy")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best", ncol=2 if len(colours) > 5 else 1)
    title(ax, "FPS / accuracy frontier", run_dir, config)
    fig.tight_layout()
    return fig


def write_frontier_plot(run_dir: Path, records: list[MemberRecord], floor: float,
                        target_fps: float | None = None, config: EvolveConfig | None = None) -> Path:
    return save(frontier_figure(run_dir, records, floor, target_fps, config),
                _report_dir(run_dir) / "frontier.png", run_dir)
