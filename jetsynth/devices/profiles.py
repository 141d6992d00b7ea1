"""What jetsynth knows about each Jetson board before it has probed one: GPU architecture,
precisions, TensorRT major version and the Python that JetPack ships. Deploy uses a profile to
choose defaults (fp16 where the GPU has fast fp16) and to warn when a probed device disagrees."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from jetsynth.errors import JetsynthError


@dataclass(frozen=True)
class DeviceProfile:
    """One board. `compute_capability` as (major, minor); `tensorrt_major` of the newest JetPack
    that supports the board. `channel_multiple`: the channel groups `evolve --bench` evolves in
    for this board when --channel-multiple is not given (None: the run's default, 8). Every
    built-in board declares 8, the step in which users of these boards see their engines' speed
    change (tensor cores take fp16 channels in eights, HWC8). The Maxwell boards' fp16 formats
    pair channels (CHW2), so a finer multiple might serve them; no board was timed here to say
    so, and a profile measured otherwise would declare its own multiple in this field."""

    name: str
    board: str
    gpu: str
    compute_capability: tuple[int, int]
    fp16: bool
    int8: bool
    sparse: bool
    tensorrt_major: int
    jetpack: str
    python: str
    channel_multiple: int | None = None

    def as_dict(self) -> dict:
        out = asdict(self)
        out["compute_capability"] = "{}.{}".format(*self.compute_capability)
        return out


PROFILES = {
    p.name: p
    for p in (
        DeviceProfile("tx1", "Jetson TX1", "Maxwell, 256 cores", (5, 3), True, False, False, 8, "4.6",
                      "3.6", channel_multiple=8),
        DeviceProfile("nano", "Jetson Nano", "Maxwell, 128 cores", (5, 3), True, False, False, 8, "4.6",
                      "3.6", channel_multiple=8),
        DeviceProfile("xavier-nx", "Jetson Xavier NX", "Volta, 384 cores", (7, 2), True, True, False, 8,
                      "5.1", "3.8", channel_multiple=8),
        DeviceProfile("orin-nano", "Jetson Orin Nano", "Ampere, 1024 cores", (8, 7), True, True, True, 10,
                      "6.1", "3.10", channel_multiple=8),
    )
}


def get_profile(name: str | None) -> DeviceProfile | None:
    """The profile called `name` (None for none), or a clear error naming the known ones."""
    if name is None:
        return None
    if name not in PROFILES:
        raise JetsynthError(f"no device profile '{name}'; known profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


def disagreements(profile: DeviceProfile, facts: dict) -> list[str]:
    """Where a probed device contradicts its profile (a different TensorRT major version, or a
    GPU of another compute capability; or, where the facts say so, no TensorRT at all or no GPU
    and no CUDA, so that timings there are not what the profile promises): one warning line
    each."""
    warnings = []
    if "tensorrt" in facts and not facts["tensorrt"] and "trtexec" in facts and not facts["trtexec"]:
        warnings.append(f"profile {profile.name} ({profile.board}) has TensorRT {profile.tensorrt_major}"
                        ".x, the device has no TensorRT (neither its Python bindings nor trtexec): "
                        "deploy times it with onnxruntime instead")
    if "gpu" in facts and not facts["gpu"] and "cuda" in facts and not facts["cuda"]:
        warnings.append(f"profile {profile.name} ({profile.board}) has a {profile.gpu} GPU, the device "
                        "shows no GPU and no CUDA: figures from it are CPU figures")
    trt = facts.get("tensorrt")
    if trt and trt != "present" and int(str(trt).split(".")[0]) != profile.tensorrt_major:
        warnings.append(f"profile {profile.name} expects TensorRT {profile.tensorrt_major}.x, the device "
                        f"has {trt}")
    gpu = facts.get("gpu") or {}
    expected = "{}.{}".format(*profile.compute_capability)
    if gpu.get("compute_capability") and gpu["compute_capability"] != expected:
        warnings.append(f"profile {profile.name} expects compute capability {expected}, the device "
                        f"reports {gpu['compute_capability']}")
    return warnings
