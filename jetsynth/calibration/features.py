"""What a latency model sees of a network: per-layer work read from the ONNX graph that the device
runs (after compaction, so removed filters cost nothing), summed into a few features per query.

Reading the ONNX file rather than the torch module means a user's own exported model, or one
compacted elsewhere, is described the same way as an evolved one. Every count is per image unless
named per query; a query of B images multiplies the per-image counts by B, while the per-query
terms (dispatch of each operator, reading the weights) do not grow with B.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jetsynth.errors import JetsynthError

if TYPE_CHECKING:
    import onnx

FEATURES = ("query", "operators", "weights", "conv_macs", "gemm_macs", "im2col", "activations")
"""Names of the feature vector's entries, in order: 1 per query; operators per query; weight
elements per query; then per query, B × (conv multiply-accumulates, fully-connected
multiply-accumulates, elements of the convolutions' unfolded input patches, output elements of
every operator)."""

SHAPELESS = {"Constant", "Identity"}


@dataclass(frozen=True)
class LayerWork:
    """One operator's work for one image: multiply-accumulates, input and output channels,
    elements of its unfolded input patches (convolutions), output elements and weight elements."""

    name: str
    op: str
    macs: int
    in_channels: int
    out_channels: int
    im2col: int
    outputs: int
    weights: int

    def as_dict(self) -> dict:
        return asdict(self)


def _dims(value) -> list[int] | None:
    """Static dims of a tensor type, a symbolic batch axis (the first) as 1; None when any other
    axis is symbolic."""
    if not value.type.tensor_type.HasField("shape"):
        return None
    dims = []
    for index, dim in enumerate(value.type.tensor_type.shape.dim):
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif index == 0:
            dims.append(1)
        else:
            return None
    return dims


def _shapes(proto) -> dict[str, list[int]]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception as exc:  # onnx raises its own error types for malformed graphs
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise JetsynthError(f"cannot infer the model's tensor shapes ({reason}); check it with "
                            "onnx.checker or export it again") from None
    graph = inferred.graph
    shapes = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        dims = _dims(value)
        if dims is not None:
            shapes[value.name] = dims
    for tensor in graph.initializer:
        shapes[tensor.name] = list(tensor.dims)
    for node in graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                shapes[node.output[0]] = list(value.dims)
    return shapes


def _size(dims: list[int] | None) -> int:
    return int(np.prod(dims)) if dims else 0


def layer_work(proto: onnx.ModelProto) -> list[LayerWork]:
    """Each operator's work per image, in graph order (Constant and Identity nodes left out)."""
    shapes = _shapes(proto)
    initializers = {t.name for t in proto.graph.initializer}
    initializers |= {n.output[0] for n in proto.graph.node if n.op_type == "Constant" and n.output}
    layers = []
    for index, node in enumerate(proto.graph.node):
        if node.op_type in SHAPELESS:
            continue
        out = shapes.get(node.output[0]) if node.output else None
        outputs = _size(out)
        weights = sum(_size(shapes.get(name)) for name in node.input if name in initializers)
        macs = im2col = cin = cout = 0
        if node.op_type == "Conv" and len(node.input) > 1:
            weight = shapes.get(node.input[1])
            if weight is None or out is None or len(out) < 3:
                raise JetsynthError(f"convolution {node.name or index} has no static shape; export "
                                    "the model with fixed image dimensions")
            positions = _size(out[2:])
            per_output = _size(weight[1:])
            cout = weight[0]
            groups = next((a.i for a in node.attribute if a.name == "group"), 1) or 1
            cin = weight[1] * groups
            macs = cout * positions * per_output
            im2col = positions * per_output * groups
        elif node.op_type in ("Gemm", "MatMul") and out:
            weight = shapes.get(node.input[1]) if len(node.input) > 1 else None
            if weight and len(weight) == 2:
                transposed = any(a.name == "transB" and a.i for a in node.attribute)
                cout, cin = (weight[0], weight[1]) if transposed else (weight[1], weight[0])
                macs = cin * cout * max(1, outputs // max(cout, 1))
        layers.append(LayerWork(node.name or f"{node.op_type}_{index}", node.op_type, int(macs),
                                int(cin), int(cout), int(im2col), int(outputs), int(weights)))
    return layers


def features(layers: list[LayerWork], batch: int) -> np.ndarray:
    """The feature vector (see FEATURES) of one query of `batch` images."""
    conv = [w for w in layers if w.op == "Conv"]
    gemm = [w for w in layers if w.op in ("Gemm", "MatMul")]
    return np.array([
        1.0,
        float(len(layers)),
        float(sum(w.weights for w in layers)),
        float(batch * sum(w.macs for w in conv)),
        float(batch * sum(w.macs for w in gemm)),
        float(batch * sum(w.im2col for w in conv)),
        float(batch * sum(w.outputs for w in layers)),
    ])


def model_work(path: Path) -> list[LayerWork]:
    """`layer_work` of an ONNX file, with a clear error for a missing or corrupt one."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise JetsynthError(f"{path}: no such file")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf decoding errors
        raise JetsynthError(f"{path} is not an ONNX model ({exc.__class__.__name__}); export it "
                            "again") from None
    if not proto.graph.node:
        raise JetsynthError(f"{path} is not an ONNX model (no graph; an empty or truncated file?); "
                            "export it again")
    return layer_work(proto)
