"""Reading an ONNX file the user names: one clear line when it is not one."""

from __future__ import annotations

from pathlib import Path

from .errors import JetsynthError


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
