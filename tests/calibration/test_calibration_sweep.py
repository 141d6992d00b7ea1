import onnx
import pytest

from jetsynth.calibration.features import model_work
from jetsynth.calibration.sweep import (
    ARCH_INPUTS,
    MIN_WIDTH,
    Variant,
    export_variant,
    variant_genome,
    variants,
)
from jetsynth.errors import JetsynthError
from jetsynth.run.calibrate import sweep

HIDDEN_LAYERS = {"lenet5": 3, "alexnet-cifar": 7}


@pytest.mark.parametrize("arch", list(ARCH_INPUTS))
def test_variants_are_deterministic_for_a_seed(arch):
    assert variants(arch, 6, seed=3) == variants(arch, 6, seed=3)
    assert variants(arch, 6, seed=3)[1:] != variants(arch, 6, seed=4)[1:]


@pytest.mark.parametrize("arch", list(ARCH_INPUTS))
def test_first_variant_is_the_full_ancestor(arch):
    first = variants(arch, 4, seed=2)[0]
    assert first == Variant(arch, (1.0,) * HIDDEN_LAYERS[arch], 2000)
    assert first.name == f"{arch}-s2000"


@pytest.mark.parametrize("arch", list(ARCH_INPUTS))
def test_widths_lie_between_min_width_and_one(arch):
    chosen = variants(arch, 40, seed=0)
    assert len(chosen) == 40 and len({v.name for v in chosen}) == 40
    widths = [w for v in chosen for w in v.widths]
    assert all(MIN_WIDTH <= w <= 1.0 for w in widths)
    assert all(len(v.widths) == HIDDEN_LAYERS[arch] for v in chosen)
    assert min(widths) < 0.1


def test_a_larger_sweep_starts_with_the_smaller_one():
    assert variants("lenet5", 8, seed=1)[:5] == variants("lenet5", 5, seed=1)


def test_variant_genome_keeps_round_width_times_units_alive():
    variant = Variant("lenet5", (0.01, 0.1, 0.5), 7)
    genome = variant_genome(variant)
    assert [layer.out_units for layer in genome.layers] == [20, 50, 500, 10]
    alive = [int(genome.masks[layer.name].reshape(layer.out_units, -1).any(dim=1).sum())
             for layer in genome.layers]
    assert alive == [max(1, round(0.01 * 20)), round(0.1 * 50), round(0.5 * 500), 10] == [1, 5, 250, 10]
    assert genome.lineage.id == "lenet5-s7"


def test_variant_genome_of_drawn_variants():
    for variant in [*variants("lenet5", 6, seed=5)[1:], variants("alexnet-cifar", 2, seed=5)[1]]:
        genome = variant_genome(variant)
        for layer, width in zip(genome.layers[:-1], variant.widths, strict=True):
            alive = genome.masks[layer.name].reshape(layer.out_units, -1).any(dim=1).sum()
            assert int(alive) == max(1, round(width * layer.out_units))


def test_export_variant_writes_the_compacted_network(tmp_path):
    variant = Variant("lenet5", (0.3, 0.5, 0.1), 11)
    path = export_variant(variant, tmp_path, "fp32")
    assert path == tmp_path / "lenet5-s11-fp32.onnx"
    proto = onnx.load(str(path))
    initializers = {t.name: list(t.dims) for t in proto.graph.initializer}
    first_conv = next(n for n in proto.graph.node if n.op_type == "Conv")
    assert initializers[first_conv.input[1]][0] == round(0.3 * 20) == 6
    layers = model_work(path)
    assert [w.out_channels for w in layers if w.op == "Conv"] == [6, 25]
    assert [w.out_channels for w in layers if w.op == "Gemm"] == [50, 10]


def test_export_variant_reuses_an_existing_file(tmp_path):
    variant = Variant("lenet5", (0.3, 0.5, 0.1), 11)
    path = export_variant(variant, tmp_path, "fp16")
    stamp = path.stat().st_mtime_ns
    assert export_variant(variant, tmp_path, "fp16") == path and path.stat().st_mtime_ns == stamp


def test_sweep_interleaves_the_architectures():
    chosen = sweep(("lenet5", "alexnet-cifar"), 3, seed=0)
    assert [v.name for v in chosen] == ["lenet5-s0", "alexnet-cifar-s0", "lenet5-s1", "alexnet-cifar-s1",
                                        "lenet5-s2", "alexnet-cifar-s2"]
    assert chosen[::2] == variants("lenet5", 3, 0) and chosen[1::2] == variants("alexnet-cifar", 3, 0)


def test_sweep_of_an_unknown_architecture():
    with pytest.raises(JetsynthError, match="cannot calibrate on 'resnet'; choose from lenet5, alexnet"):
        sweep(("lenet5", "resnet"), 3, seed=0)


def test_sweep_needs_at_least_one_variant():
    with pytest.raises(JetsynthError, match="`variants` must be at least 1"):
        sweep(("lenet5",), 0, seed=0)
