"""What every jetsynth plot shares so that a person can read it: a title naming the run and the
dataset, whole-number generation ticks, log axes ticked 1×, 2×, 5×, 10× (or 1k, 2k, 5k images/s)
rather than bare powers of ten, layers named as in the model, and lines that stay apart when they
overlap (each its own marker and dash)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import cycle
from pathlib import Path

from jetsynth.core.records import LayerRecord
from jetsynth.report.text import plot_text, printable
from jetsynth.run.config import EvolveConfig
from jetsynth.storage import atomic_write

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
DASHES = ("-", "--", "-.", ":")
DPI = 120
NARROW_LOG_SPAN = 8.0
"""A log axis spanning less than this ratio is ticked at evenly spaced round values instead."""
MAX_125_DECADES = 3
"""Beyond this many decades a log axis is ticked at the decades only (1-2-5 would crowd)."""


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def dataset_name(data: str) -> str:
    """'mnist:/data/mnist' -> 'mnist'; 'folder:/x/pets' -> 'folder pets'; 'digits' -> 'digits'."""
    kind, _, path = data.partition(":")
    if kind == "folder" and path:
        return f"folder {Path(path).name}"
    return kind


def run_subtitle(run_dir: Path, config: EvolveConfig | None) -> str:
    """'run NAME, DATASET' for a plot's title."""
    name = Path(run_dir).resolve().name
    return f"run {name}, {dataset_name(config.data)}" if config is not None else f"run {name}"


def title(fig_or_ax, text: str, run_dir: Path, config: EvolveConfig | None) -> None:
    """The plot's title: what it shows, then the run and dataset on a second line."""
    full = f"{text}\n{plot_text(run_subtitle(run_dir, config))}"
    if hasattr(fig_or_ax, "suptitle"):
        fig_or_ax.suptitle(full, fontsize=10)
    else:
        fig_or_ax.set_title(full, fontsize=10)


def integer_ticks(axis) -> None:
    """Whole numbers only (generations, members)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def times_label(value: float, _position=None) -> str:
    """A factor as '1×', '2×', '0.5×', '20×'."""
    return f"{value:g}×"


def count_label(value: float, _position=None) -> str:
    """A count as '500', '2k', '1.5M', '1G'."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def number_label(value: float, _position=None) -> str:
    """A plain number with thousands separators: '1,500', '0.5'."""
    return f"{value:,.0f}" if value >= 10 else f"{value:g}"


def readable_log(axis, formatter=times_label) -> None:
    """A log axis ticked at 1, 2 and 5 of every decade, labelled with `formatter` (factors as
    1×, 2×, 5×, 10×; counts as 1k, 2k, 5k), no minor labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    axis.axes.autoscale_view()
    low, high = sorted(axis.get_view_interval())
    if low > 0 and high / low < NARROW_LOG_SPAN:
        # within less than a decade 1-2-5 leaves one tick or none: evenly spaced round values
        for bins in (5, 10, 20):
            ticks = [t for t in MaxNLocator(nbins=bins, steps=[1, 2, 5, 10]).tick_values(low, high)
                     if low <= t <= high and t > 0]
            if len(ticks) >= 3:
                break
        axis.set_major_locator(FixedLocator(ticks))
    else:  # 1-2-5 in each decade, or only the decades when there are many
        wide = low > 0 and high / low > 10 ** MAX_125_DECADES
        axis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(formatter))
    axis.set_minor_formatter(NullFormatter())


def line_styles():
    """(marker, dash) pairs, all different for the first 10 lines, so overlapping lines stay
    distinguishable in print and for colour-blind readers."""
    return cycle(zip(MARKERS, cycle(DASHES), strict=False))


def layer_labels(layers: Sequence[LayerRecord]) -> list[str]:
    """Each layer named as in the model, by its module name (conv1, layer1.0.downsample.0,
    features.3.conv.1.0); only a layer of a plain nn.Sequential, whose whole name is an index
    ('0', '3'), is called conv1, conv2, fc1... in order (unless the model has a layer of that
    name). The kind is the recorded one, else inferred: a linear layer does one multiply-
    accumulate per weight per image, a convolution more."""
    counts = {"conv": 0, "fc": 0}
    names = {str(layer.name) for layer in layers}
    labels = []
    for layer in layers:
        kind = layer.kind
        if kind is None:
            kind = "linear" if layer.macs == layer.synapses else "conv"
        short = "fc" if kind == "linear" else "conv"
        name = printable(layer.name)
        if name.isdigit():
            counts[short] += 1
            if f"{short}{counts[short]}" not in names:
                name = f"{short}{counts[short]}"
        labels.append(name)
    return labels


LABEL_OFFSETS = ((4, 4), (4, -10), (-44, 4), (-44, -10), (4, 14), (4, -20))
"""Where a point's label may go, in points from the point: the first that clears the others."""


def label_points(ax, xs: list[float], ys: list[float], labels: list[str], fontsize: int = 7) -> None:
    """Write each label beside its point, moving it to another side when it would cover a label
    already placed (greedy, in screen coordinates; call after the axes' scales are set)."""
    ax.autoscale_view()
    placed: list[tuple[float, float]] = []
    scale = ax.figure.dpi / 72.0
    width, height = 6.0 * fontsize * scale, 1.3 * fontsize * scale  # a label of ~7 characters
    for x, y, text in zip(xs, ys, labels, strict=True):
        px, py = ax.transData.transform((x, y))
        for dx, dy in LABEL_OFFSETS:
            left, bottom = px + dx * scale, py + dy * scale
            if all(abs(left - ox) > width or abs(bottom - oy) > height for ox, oy in placed):
                break
        placed.append((left, bottom))
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize)


def generation_colours(generations: list[int]):
    """One distinct colour per generation (a discrete palette, not a gradient): a dict
    generation -> colour, in order."""
    plt = pyplot()
    distinct = sorted(set(generations))
    palette = plt.get_cmap("tab10" if len(distinct) <= 10 else "tab20")
    return {g: palette(i % palette.N) for i, g in enumerate(distinct)}


def save(fig, path: Path, root: Path | None = None) -> Path:
    """Write `fig` as a PNG to `path` (whole or not at all), inside `root` (a run directory):
    never through a link planted there (storage.confine)."""
    path = Path(path)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI), root)
    finally:
        pyplot().close(fig)
    return path
