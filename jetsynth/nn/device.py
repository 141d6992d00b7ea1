"""Where training runs and in what arithmetic: `--device auto|cpu|cuda|cuda:N` and
`--amp bf16|fp16|off`, resolved against the GPUs this machine has, checked before anything is
written so a wrong choice ends with one line.

`auto` is CUDA when there is a GPU, else the CPU; `cuda` is every GPU of the machine (the local
executor spreads a generation's members over them), `cuda:N` that one. Mixed precision defaults
to bf16 on a GPU that has it (fp16 with a gradient scaler on older ones) and to off on the CPU,
where fp32 keeps seeded runs bit for bit reproducible; bf16 also runs on the CPU when asked.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from jetsynth.errors import JetsynthError

DEVICE_WORDS = "auto, cpu, cuda or cuda:N"
AMP_CHOICES = ("bf16", "fp16", "off")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cuda_count() -> int:
    """GPUs torch can use here (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_devices(text: str, count: Callable[[], int] = cuda_count) -> list[str]:
    """The torch devices `text` (--device) names on this machine, in order: ['cpu'],
    ['cuda:0', 'cuda:1', …] for cuda (auto with GPUs), ['cuda:N'] for cuda:N. `count()` tells
    how many GPUs there are (tests pass their own)."""
    word = (text or "auto").strip().lower()
    if word == "cpu":
        return ["cpu"]
    if word not in ("auto", "cuda") and not word.startswith("cuda:"):
        raise JetsynthError(f"`device` {text}: expected {DEVICE_WORDS}", setting="device")
    gpus = count()
    if word == "auto":
        return [f"cuda:{i}" for i in range(gpus)] or ["cpu"]
    if gpus == 0:
        raise JetsynthError(f"`device` {text}: torch finds no CUDA GPU on this machine (torch "
                            f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
                            "use `device` cpu, or install a CUDA build of torch", setting="device")
    if word == "cuda":
        return [f"cuda:{i}" for i in range(gpus)]
    index = word.removeprefix("cuda:")
    if not index.isdigit():
        raise JetsynthError(f"`device` {text}: expected {DEVICE_WORDS} (N a GPU number from 0)",
                            setting="device")
    if int(index) >= gpus:
        raise JetsynthError(f"`device` {text}: this machine has {gpus} GPU(s), cuda:0 to "
                            f"cuda:{gpus - 1}; pick one of those or `device` cuda", setting="device")
    return [f"cuda:{int(index)}"]


def resolve_amp(amp: str | None, device: str, bf16: Callable[[], bool] | None = None) -> str:
    """--amp for training on `device`: as given, or by default bf16 on a GPU that supports it,
    fp16 on one that does not, off on the CPU. fp16 on the CPU is refused (no gradient scaler
    there); `bf16()` tells whether the GPU has bf16 (tests pass their own)."""
    if amp is not None and amp not in AMP_CHOICES:
        raise JetsynthError(f"`amp` {amp}: expected one of {', '.join(AMP_CHOICES)}", setting="amp")
    on_gpu = device.startswith("cuda")
    if amp is None:
        if not on_gpu:
            return "off"
        supported = bf16 if bf16 is not None else torch.cuda.is_bf16_supported
        return "bf16" if supported() else "fp16"
    if amp == "fp16" and not on_gpu:
        raise JetsynthError("`amp` fp16 needs a GPU (its gradient scaler is CUDA's); on the CPU "
                            "use `amp` bf16 or `amp` off", setting="amp")
    return amp


def describe(devices: list[str], amp: str) -> str:
    """One line saying what trains: the devices, by name, and the arithmetic."""
    if devices == ["cpu"]:
        where = "the CPU"
    else:
        names = [f"{d} ({torch.cuda.get_device_name(int(d.split(':')[1]))})" for d in devices]
        where = ", ".join(names)
        if len(devices) > 1:
            where += ", one member per GPU at a time"
    precision = "fp32" if amp == "off" else f"mixed precision {amp}"
    return f"training on {where} in {precision} (--device, --amp)"
