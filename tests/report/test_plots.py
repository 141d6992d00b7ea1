"""The plots read as a person needs: titles with run and dataset, whole-number generations,
1×-2×-5× log ticks, layers named as in the model, ids on the frontier's points."""

import numpy as np
import pytest

from jetsynth.core.records import LayerRecord
from jetsynth.report.plots import (
    family_tree_figure,
    frontier_figure,
    layer_figure,
    member_figure,
    pressure_figure,
    similarity_figure,
    storage_figure,
    write_plots,
)
from jetsynth.report.plotting import count_label, layer_labels, times_label
from jetsynth.report.run_report import PressureRow
from jetsynth.run.config import EvolveConfig
from tests.member_records import member as member_record

CONFIG = EvolveConfig(data="mnist:/data/mnist", target_fps=20000.0)
LAYERS = [("0", 500, 288000), ("3", 25000, 1600000), ("6", 400000, 400000), ("8", 5000, 5000)]


def _record(generation, member, accuracy, shrink, fps, parents=()):
    layers = [{"name": name, "synapses": int(s / shrink), "clusters": 10, "macs": int(m / shrink)
               if name in ("0", "3") else int(s / shrink)} for name, s, m in LAYERS]
    return member_record(**{"id": f"g{generation:02d}-m{member:02d}", "generation": generation,
                            "member": member,
            "parents": list(parents), "accuracy": accuracy, "val_accuracy": accuracy + 0.001,
            "synapses": sum(layer["synapses"] for layer in layers), "clusters": 40,
            "macs": sum(layer["macs"] for layer in layers), "synaptic_efficiency": shrink,
            "cluster_efficiency": shrink ** 0.5, "mac_reduction": shrink ** 0.7,
            "layers": layers, "layer_cluster_efficiency": [shrink ** (i / 4) for i in range(4)],
            "fps": fps})


RECORDS = [_record(1, 0, 0.99, 1.0, 5000.0)] + [
    _record(g, m, 0.99 - 0.002 * g - 0.001 * m, 1.6 ** (g - 1) * (1 + 0.1 * m), 5000.0 * g + 300 * m,
            parents=(f"g{g - 1:02d}-m00",))
    for g in range(2, 7) for m in range(2)
]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    from jetsynth.report.plotting import pyplot

    pyplot().close("all")


def _ticks(axis):
    """The labels of the major ticks inside the axis' view."""
    low, high = sorted(axis.get_view_interval())
    return [label.get_text() for loc, label in zip(axis.get_majorticklocs(), axis.get_majorticklabels(),
                                                   strict=True)
            if low <= loc <= high and label.get_text()]


def test_labels_of_factors_and_counts():
    assert [times_label(v) for v in (1, 2, 5, 10, 0.5)] == ["1×", "2×", "5×", "10×", "0.5×"]
    assert [count_label(v) for v in (500, 2000, 1500000, 1e9)] == ["500", "2k", "1.5M", "1G"]


def test_layers_named_as_in_the_model():
    assert layer_labels(RECORDS[0].layers) == ["conv1", "conv2", "fc1", "fc2"]
    layers = [{"name": "layer1.0.conv1", "synapses": 9, "macs": 90},
              {"name": "fc", "synapses": 5, "macs": 5, "kind": "linear"},
              {"name": "layer1.0.downsample.0", "synapses": 9, "macs": 90},
              {"name": "features.3.conv.1.0", "synapses": 9, "macs": 90},
              {"name": "classifier.1", "synapses": 5, "macs": 5, "kind": "linear"}]
    assert layer_labels([LayerRecord.from_json({**layer, "clusters": 1}) for layer in layers]) == [
        "layer1.0.conv1", "fc", "layer1.0.downsample.0", "features.3.conv.1.0", "classifier.1"]


def test_accuracy_plot_has_run_dataset_ancestor_floor_and_integer_generations(tmp_path):
    fig = member_figure(tmp_path / "run-7", RECORDS, "accuracy", "test accuracy", False, CONFIG,
                        floor=0.98)
    ax = fig.axes[0]
    fig.canvas.draw()
    assert ax.get_title() == "Test accuracy per generation\nrun run-7, mnist"
    assert _ticks(ax.xaxis) == ["1", "2", "3", "4", "5", "6"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "ancestor (0.9900)" in legend and "accuracy floor 0.9800 (on validation)" in legend


def test_efficiency_plot_is_ticked_in_factors(tmp_path):
    fig = member_figure(tmp_path / "run", RECORDS, "synaptic_efficiency", "x", True, CONFIG)
    fig.canvas.draw()
    ticks = _ticks(fig.axes[0].yaxis)
    assert ticks and all(t.endswith("×") for t in ticks)
    assert {"1×", "2×", "5×", "10×"} <= set(ticks)


def test_fps_plot_shows_the_target(tmp_path):
    fig = member_figure(tmp_path / "run", RECORDS, "fps", "fps", True, CONFIG,
                        target_fps=CONFIG.target_fps)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "target 20,000 images/s" in legend
    fig.canvas.draw()
    assert "10k" in _ticks(fig.axes[0].yaxis)


def test_layer_plot_lines_are_named_and_distinguishable(tmp_path):
    fig = layer_figure(tmp_path / "run", RECORDS, CONFIG)
    lines = [line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]
    assert [line.get_label() for line in lines] == ["conv1", "conv2", "fc1", "fc2"]
    styles = {(line.get_marker(), line.get_linestyle()) for line in lines}
    assert len(styles) == 4


def test_frontier_points_carry_ids_and_one_colour_per_generation(tmp_path):
    fig = frontier_figure(tmp_path / "run", RECORDS, 0.975, 20000.0, CONFIG)
    ax = fig.axes[0]
    texts = {t.get_text() for t in ax.texts}
    assert {r.id for r in RECORDS} <= texts
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [f"generation {g}" for g in range(1, 7)] == [t for t in legend if t.startswith("generation")]
    assert "target 20,000 images/s" in legend and "accuracy floor 0.9750" in legend
    assert ax.get_title().endswith("run run, mnist")


def test_family_tree_labels_every_member_at_a_readable_size(tmp_path):
    fig = family_tree_figure(tmp_path / "run", RECORDS, CONFIG)
    assert {t.get_text() for t in fig.axes[0].texts} == {r.id for r in RECORDS}
    width, height = fig.get_size_inches()
    assert width >= 7 and height >= 4.5


def test_similarity_heatmap_scale_fits_the_values(tmp_path):
    matrix = np.array([[1.0, 0.93, 0.95], [0.94, 1.0, 0.96], [0.92, 0.97, 1.0]])
    fig = similarity_figure(tmp_path / "run", 4, ["g04-m00", "g04-m01", "g04-m02"], matrix, CONFIG)
    ax = fig.axes[0]
    image = ax.get_images()[0]
    assert image.get_clim() == (0.92, 0.97)
    assert ax.get_title().startswith("Cluster overlap |A∩B| / |A| in generation 4")
    assert ax.get_title().endswith("run run, mnist")
    fig.canvas.draw()
    assert fig.axes[0].title.get_window_extent().width < fig.bbox.width  # the title fits


def test_storage_plot_colours_generations_apart(tmp_path):
    fig = storage_figure(tmp_path / "run", RECORDS, "fp16", CONFIG)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [f"generation {g}" for g in range(1, 7)]


def test_pressure_plot_has_integer_generations(tmp_path):
    rows = [PressureRow(generation=g, keep=0.8, best_val_accuracy=0.99, floor=0.98, at_floor=1,
                        synaptic_efficiency=1.5 ** g, mac_reduction=1.3 ** g) for g in range(1, 6)]
    fig = pressure_figure(tmp_path / "run", rows, CONFIG)
    fig.canvas.draw()
    assert _ticks(fig.axes[2].xaxis) == ["1", "2", "3", "4", "5"]
    assert fig._suptitle.get_text().endswith("run run, mnist")


def test_write_plots_writes_pngs(tmp_path):
    paths = write_plots(tmp_path, RECORDS, CONFIG)
    assert {p.name for p in paths} == {"accuracy.png", "synaptic_efficiency.png", "cluster_efficiency.png",
                                       "fps.png", "layer_cluster_efficiency.png"}


def test_many_layers_plot_as_a_heatmap_named_as_in_the_model(tmp_path):
    from jetsynth.report.plots import layer_figure

    names = [f"features.{i}.conv.1.0" for i in range(30)] + ["classifier.1"]
    layers = [{"name": n, "synapses": 9, "clusters": 1, "macs": 90} for n in names]
    records = [member_record(generation=g, member=0, accuracy=0.9, val_accuracy=0.9, layers=layers,
                             layer_cluster_efficiency=[1.0 + g * i / 30 for i in range(len(names))])
               for g in (1, 2, 3)]
    fig = layer_figure(tmp_path / "run", records, CONFIG)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert ax.get_legend() is None and fig.get_size_inches()[1] >= 0.2 * len(names)
