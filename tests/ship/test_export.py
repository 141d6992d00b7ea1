import onnx
import pytest
import torch
from onnx import TensorProto

from jetsynth.core.genome import ancestor_genome
from jetsynth.core.trials import ties
from jetsynth.errors import JetsynthError
from jetsynth.nn.models import build_model
from jetsynth.run.export_run import export_member
from jetsynth.run.rundir import RunDirectory
from jetsynth.ship.export import (
    compact_genome,
    export_genome,
    onnx_session,
    read_metadata,
    to_onnx,
)


def _input_type(proto) -> int:
    return proto.graph.input[0].type.tensor_type.elem_type


def _initializer_types(proto) -> set[int]:
    return {init.data_type for init in proto.graph.initializer}


@pytest.mark.parametrize("arch", ["lenet5", "resnet-small"])
def test_fp16_model_with_fp32_io_at_opset_13(arch):
    model = build_model(arch, (1, 28, 28), 10).eval()
    proto = to_onnx(model, (1, 28, 28), precision="fp16", io_precision="fp32")
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [13]
    assert _input_type(proto) == TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert TensorProto.FLOAT16 in _initializer_types(proto)
    assert TensorProto.FLOAT not in _initializer_types(proto)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    onnx.checker.check_model(proto, full_check=True)
    assert len(proto.graph.value_info) > 0  # shapes were inferred


def test_fp16_io_and_opset_override():
    model = build_model("lenet5", (1, 28, 28), 10).eval()
    proto = to_onnx(model, (1, 28, 28), precision="fp16", io_precision="fp16", opset=17)
    assert _input_type(proto) == TensorProto.FLOAT16
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"opset": 5}, "outside 7"),
    ({"precision": "int8"}, "precision must be one of"),
    ({"precision": "fp32", "io_precision": "fp16"}, "fp16 inputs need an fp16 model"),
])
def test_bad_export_options(kwargs, message):
    with pytest.raises(JetsynthError, match=message):
        to_onnx(build_model("lenet5", (1, 28, 28), 10), (1, 28, 28), **kwargs)


@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", 1e-4), ("fp16", 5e-2)])
def test_exported_genome_matches_torch(tmp_path, digits, precision, tolerance):
    genome = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    masks = {k: v.clone() for k, v in genome.masks.items()}
    masks["0"][:7] = False  # seven dead conv1 filters: the exported net is smaller
    genome = genome.with_masks(masks, genome.lineage)
    result = export_genome(genome, tmp_path / "net.onnx", precision, parity_images=digits.test_x[:200])
    assert result.path.is_file() and result.bytes == result.path.stat().st_size
    assert result.parity["top1_agreement"] >= 0.99
    assert result.parity["max_abs_diff"] < tolerance
    session = onnx_session(result.path)
    assert session.get_inputs()[0].shape[1:] == [1, 28, 28]
    proto = onnx.load(str(result.path))
    conv1 = next(i for i in proto.graph.initializer if len(i.dims) == 4)
    assert conv1.dims[0] == 13
    assert compact_genome(genome).macs == result.macs


def test_export_member_metadata_says_what_the_device_needs(tmp_path, benched_run):
    result, shipped = export_member(benched_run, tmp_path / "m.onnx", generation=3, member=0)
    record = shipped.record
    meta = read_metadata(onnx.load(str(result.path)))
    assert meta["member"] == "g03-m00" and meta["generation"] == 3
    assert meta["parents"] == ["g02-m00"]
    assert meta["accuracy"] == pytest.approx(record.accuracy)
    assert meta["synapses"] == record.synapses
    assert meta["precision"] == "fp16" and meta["opset"] == 13
    assert set(meta["preprocessing"]) == {"layout", "color", "pixel_scale", "mean", "std", "class_names"}
    assert meta["preprocessing"]["class_names"] == [str(i) for i in range(10)]
    assert meta["val_accuracy"] == pytest.approx(record.val_accuracy)
    assert meta["jetsynth_version"]
    assert meta["parity"]["top1_agreement"] >= 0.99


def test_the_ancestor_and_the_best_member_export(tmp_path, benched_run):
    ancestor, named = export_member(benched_run, tmp_path / "a.onnx", generation=1, member=0,
                                    check_parity=False)
    assert named.record.id == "g01-m00" and ancestor.parity is None
    best, picked = export_member(benched_run, tmp_path / "b.onnx", max_drop=1.0, check_parity=False)
    records = RunDirectory(benched_run).records()
    fastest = max(records, key=lambda r: r.fps)
    assert picked.record.id == fastest.id or ties(picked.record, fastest)
    assert named.picked_because is None and picked.picked_because


def test_export_best_says_what_it_picked_and_why(tmp_path, benched_run):
    import os

    from click.testing import CliRunner

    from jetsynth.cli.main import cli

    old = os.umask(0o022)
    try:
        done = CliRunner().invoke(cli, ["export", str(benched_run), "--best", "--max-drop", "1",
                                        "--no-parity", "-o", str(tmp_path / "best.onnx")])
    finally:
        os.umask(old)
    assert done.exit_code == 0, done.output
    picked = [line for line in done.output.splitlines() if line.strip().startswith("picked ")]
    assert len(picked) == 1 and "images/s" in picked[0] and "validation accuracy" in picked[0]
    assert (tmp_path / "best.onnx").stat().st_mode & 0o777 == 0o644


def test_unknown_member_is_a_clear_error(tmp_path, benched_run):
    with pytest.raises(JetsynthError, match="no finished member 7 in generation 2"):
        export_member(benched_run, tmp_path / "x.onnx", generation=2, member=7)


def test_trained_member_exports_with_parity(tmp_path, benched_run, digits):
    genome = RunDirectory(benched_run).genome("g02-m00")
    result = export_genome(genome, tmp_path / "g2.onnx", "fp16", parity_images=digits.test_x)
    assert result.parity["top1_agreement"] >= 0.99
    assert result.macs < compact_genome(RunDirectory(benched_run).genome("g01-m00")).macs


def test_a_member_trained_longer_before_export_keeps_its_structure(tmp_path, benched_run):
    plain, shipped = export_member(benched_run, tmp_path / "p.onnx", generation=3, member=0)
    tuned, tuned_shipped = export_member(benched_run, tmp_path / "t.onnx", generation=3, member=0,
                                         finetune_epochs=2)
    assert tuned.params == plain.params and tuned.macs == plain.macs
    where = "cuda:0" if torch.cuda.is_available() else "cpu"  # --device auto
    assert tuned_shipped.finetune.to_json() == {"epochs": 2, "accuracy_before": shipped.record.accuracy,
                                                "device": where}
    meta = read_metadata(onnx.load(str(tuned.path)))
    assert meta["accuracy"] == pytest.approx(tuned_shipped.record.accuracy)
    assert meta["finetune"]["epochs"] == 2
    assert tuned.parity["top1_agreement"] >= 0.99
    with pytest.raises(JetsynthError, match="--finetune-epochs must be 0 or more"):
        export_member(benched_run, tmp_path / "x.onnx", generation=3, member=0, finetune_epochs=-1)
