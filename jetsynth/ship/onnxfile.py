"""Reading an ONNX file the user names: one clear line when it is not one, and the facts a
device needs to time it (input name, per-image shape, size, sha256)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from jetsynth.errors import JetsynthError


def read_onnx(path: Path):
    """The ModelProto in `path` (external weights not loaded)."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf decode errors have no common public type
        raise JetsynthError(
            f"{path} is not a readable ONNX model ({type(exc).__name__}); export one with "
            "`jetsynth export`"
        ) from None


def model_facts(path: Path) -> dict:
    """Check on the host that `path` is an ONNX model with one image input, and read what the
    agent needs (input name and per-image shape) and the file's sha256."""
    return read_model(path)[0]


def read_model(path: Path) -> tuple[dict, bytes]:
    """`model_facts` and the file's bytes, read once."""
    path = Path(path)
    if not path.is_file():
        raise JetsynthError(f"{path}: no such file; export a model with `jetsynth export`")
    proto = read_onnx(path)
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise JetsynthError(f"{path} has {len(inputs)} inputs; deploy times models with one image input")
    dims = inputs[0].type.tensor_type.shape.dim
    image = [d.dim_value for d in dims[1:]]
    if not image or not all(v > 0 for v in image):
        raise JetsynthError(f"{path}: input '{inputs[0].name}' needs fixed dimensions after the batch axis")
    data = path.read_bytes()
    facts = {"path": str(path), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
             "input_name": inputs[0].name, "input_shape": image}
    return facts, data
