"""From a genome to a deployable ONNX file: compaction, fp16 conversion, export at opset 13 with
the TorchScript exporter (TensorRT 8.2 on a TX1 parses nothing newer, and the dynamo exporter
cannot go below 18), checks, metadata and output parity against torch on onnxruntime.

The metadata lets an application on the device feed camera frames without jetsynth: the input
is `(pixel / 255 · pixel_scale − mean) / std` per channel, in the stated layout.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jetsynth.agent.ort import ort_reason
from jetsynth.core.genome import PRECISIONS, Genome
from jetsynth.core.records import Finetune, MemberRecord
from jetsynth.errors import JetsynthError
from jetsynth.nn.compact import Compacted, compact
from jetsynth.storage import atomic_write

DEFAULT_OPSET = 13
TENSORRT_82_MAX_OPSET = 13
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclass
class ExportResult:
    """Where the model went, how big it is (bytes; per-image multiply-accumulates; parameters),
    what it says about itself, and how closely onnxruntime reproduces torch."""

    path: Path
    precision: str
    io_precision: str
    opset: int
    bytes: int
    macs: int
    params: int
    metadata: dict
    parity: dict | None


class _HalfWithFloatIO(nn.Module):
    """An fp16 network behind fp32 inputs and outputs (two Cast nodes in the graph)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.half()).float()


def compact_genome(genome: Genome, channel_multiple: int = 1) -> Compacted:
    """The genome's network with dead units physically removed, in fp32 eval mode; each channel
    space keeps a multiple of `channel_multiple` channels (see `structure.aligned`)."""
    if channel_multiple < 1:
        raise JetsynthError(f"--channel-multiple must be at least 1, not {channel_multiple}")
    return compact(genome.build().eval(), genome.topology, genome.masks, channel_multiple)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise JetsynthError(f"{name} must be one of {', '.join(choices)}, not '{value}'")


def to_onnx(model: nn.Module, input_shape: tuple[int, ...], precision: str = "fp16",
            io_precision: str = "fp32", opset: int = DEFAULT_OPSET):
    """An ONNX ModelProto of `model` (batch axis dynamic), checked and shape-inferred.
    precision: weights and compute; io_precision: the input and output tensors."""
    import onnx

    _check_choice("precision", precision, PRECISIONS)
    _check_choice("io precision", io_precision, PRECISIONS)
    if precision == "fp32" and io_precision == "fp16":
        raise JetsynthError("fp16 inputs need an fp16 model: use --precision fp16")
    if not 7 <= opset <= 21:
        raise JetsynthError(f"--opset {opset} is outside 7–21; TensorRT 8.2 needs 13 or lower")
    net = _export_copy(model, precision, io_precision)
    dtype = torch.float16 if io_precision == "fp16" else torch.float32
    example = torch.zeros(1, *input_shape, dtype=dtype)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (example,), buffer, dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)


def _export_copy(model: nn.Module, precision: str, io_precision: str) -> nn.Module:
    net = copy.deepcopy(model).eval().float()
    if precision == "fp32":
        return net
    net = net.half()
    return net if io_precision == "fp16" else _HalfWithFloatIO(net)


def set_metadata(proto, metadata: dict) -> None:
    """Write `metadata` into the model's metadata_props (non-strings as JSON)."""
    del proto.metadata_props[:]
    for key, value in sorted(metadata.items()):
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def read_metadata(proto) -> dict:
    """metadata_props back as a dict, JSON values decoded."""
    out = {}
    for entry in proto.metadata_props:
        try:
            out[entry.key] = json.loads(entry.value)
        except ValueError:
            out[entry.key] = entry.value
    return out


def genome_metadata(genome: Genome, record: MemberRecord | None, run_dir: Path | None,
                    finetune: Finetune | None = None) -> dict:
    """What a deployed model should say about itself (`finetune`: its training at export)."""
    from jetsynth.version import __version__

    return {
        "jetsynth_version": __version__,
        "run": str(Path(run_dir).resolve()) if run_dir is not None else "",
        "member": genome.lineage.id,
        "generation": genome.lineage.generation,
        "member_index": genome.lineage.member,
        "parents": list(genome.lineage.parents),
        "accuracy": record.accuracy if record else None,
        "val_accuracy": record.val_accuracy if record else None,
        "finetune": finetune.to_json() if finetune else {},
        "synapses": record.synapses if record else None,
        "synaptic_efficiency": record.synaptic_efficiency if record else None,
        "arch": genome.arch,
        "num_classes": genome.num_classes,
        "input_shape": list(genome.input_shape),
        "weights_precision": genome.precision,
        "preprocessing": genome.extra.get("preprocessing", {}),
    }


def onnx_session(source, threads: int = 0, providers: tuple[str, ...] = ("CPUExecutionProvider",)):
    """An onnxruntime session for a path or serialized bytes; a model onnxruntime cannot load is
    a user error."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(source) if isinstance(source, Path) else source,
                                    sess_options=options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise JetsynthError(f"onnxruntime cannot load the model: {ort_reason(exc)}") from None


def parity(session, reference: nn.Module, images: torch.Tensor, batch: int = 256) -> dict:
    """How closely onnxruntime reproduces `reference` (fp32 torch) on `images`: the largest
    absolute logit difference, that divided by the largest reference logit, and the share of
    images whose top-1 class agrees."""
    spec = session.get_inputs()[0]
    dtype = np.float16 if "float16" in spec.type else np.float32
    reference = reference.eval().float()
    max_abs, max_ref, agree = 0.0, 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            expected = reference(chunk)
            got = torch.from_numpy(
                np.asarray(session.run(None, {spec.name: chunk.numpy().astype(dtype)})[0], np.float32)
            )
            max_abs = max(max_abs, float((got - expected).abs().max()))
            max_ref = max(max_ref, float(expected.abs().max()))
            agree += int((got.argmax(1) == expected.argmax(1)).sum())
    return {
        "images": len(images),
        "max_abs_diff": max_abs,
        "max_rel_diff": max_abs / max_ref if max_ref else 0.0,
        "top1_agreement": agree / max(len(images), 1),
    }


def export_genome(
    genome: Genome,
    out: Path,
    precision: str = "fp16",
    io_precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    metadata: dict | None = None,
    parity_images: torch.Tensor | None = None,
    channel_multiple: int = 1,
) -> ExportResult:
    """Compact, convert and export `genome` to `out`; with `parity_images`, measure parity;
    `channel_multiple`: see `compact_genome`."""
    compacted = compact_genome(genome, channel_multiple)
    proto = to_onnx(compacted.model, genome.input_shape, precision, io_precision, opset)
    meta = {
        **(metadata or {}),
        "precision": precision,
        "io_precision": io_precision,
        "opset": opset,
        "macs": compacted.macs,
        "params": compacted.params,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
    }
    check = None
    if parity_images is not None:
        check = parity(onnx_session(proto.SerializeToString()), compacted.model, parity_images)
        meta["parity"] = check
    set_metadata(proto, meta)
    data = proto.SerializeToString()
    out = Path(out)
    atomic_write(out, lambda tmp: tmp.write_bytes(data))
    return ExportResult(out, precision, io_precision, opset, len(data), compacted.macs,
                        compacted.params, meta, check)
