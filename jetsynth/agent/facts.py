"""What the numbers were measured on: board, L4T/JetPack release, power mode, GPU clocks and
software versions, read from the files and programs a Jetson has (absent ones read as None)."""

import glob
import json
import os
import platform
import re
import shutil
import subprocess

from .lifetime import run_child

AGENT_VERSION = "1"
TRTEXEC_PATHS = ("/usr/src/tensorrt/bin/trtexec", "/usr/local/tensorrt/bin/trtexec")
L4T_TO_JETPACK = {
    "32.6.1": "4.6", "32.7.1": "4.6.1", "32.7.2": "4.6.2", "32.7.3": "4.6.3", "32.7.4": "4.6.4",
    "32.7.5": "4.6.5", "32.7.6": "4.6.6", "35.3.1": "5.1.1", "35.4.1": "5.1.2", "35.5.0": "5.1.3",
    "35.6.0": "5.1.4", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.3": "6.2",
}


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace").strip("\x00 \n")
    except OSError:
        return None


def _command(argv, timeout=10):
    """stdout of a short command, or None when it is absent or fails."""
    try:
        code, output = run_child(argv, timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return output if code == 0 else None


def parse_l4t(text):
    """'# R32 (release), REVISION: 7.1, ...' -> '32.7.1' (None when not a Tegra release file)."""
    match = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", text or "")
    return f"{match.group(1)}.{match.group(2)}" if match else None


def parse_nvpmodel(text):
    """`nvpmodel -q` -> the power mode name and id, e.g. {'name': 'MAXN', 'id': 0}."""
    name = re.search(r"NV Power Mode:\s*(\S+)", text or "")
    if not name:
        return None
    ident = re.search(r"^\s*(\d+)\s*$", text[name.end():], re.MULTILINE)
    return {"name": name.group(1), "id": int(ident.group(1)) if ident else None}


def _gpu_clocks_mhz():
    clocks = {}
    for path in glob.glob("/sys/devices/*gpu*/devfreq/*/cur_freq") + glob.glob(
            "/sys/devices/platform/*gpu*/devfreq/*/cur_freq"):
        value = _read(path)
        if value and value.isdigit():
            clocks[os.path.basename(os.path.dirname(os.path.dirname(path)))] = int(value) / 1e6
    return clocks or None


def _cuda_version():
    text = _read("/usr/local/cuda/version.txt")
    if text:
        match = re.search(r"([\d.]+)", text)
        return match.group(1) if match else text
    text = _read("/usr/local/cuda/version.json")
    if text:
        try:
            return json.loads(text)["cuda"]["version"]
        except (ValueError, KeyError, TypeError):
            return None
    return None


def _module_version(name):
    try:
        module = __import__(name)
    except Exception:  # a broken install raises anything; the fact is then "absent"
        return None
    return getattr(module, "__version__", "present")


def find_trtexec():
    found = shutil.which("trtexec")
    if found:
        return found
    for path in TRTEXEC_PATHS:
        if os.access(path, os.X_OK):
            return path
    return None


def gpu_info():
    """Name and compute capability of GPU 0 through whichever CUDA binding is installed."""
    try:
        import pycuda.driver as cuda

        cuda.init()
        device = cuda.Device(0)
        major, minor = device.compute_capability()
        return {"name": device.name(), "compute_capability": f"{major}.{minor}"}
    except Exception:  # absent binding or no GPU: try the next one
        pass
    try:
        from cuda import cudart

        err, props = cudart.cudaGetDeviceProperties(0)
        if int(err) == 0:
            name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
            return {"name": name.strip("\x00"),
                    "compute_capability": f"{props.major}.{props.minor}"}
    except Exception:  # absent binding or no GPU
        pass
    return None


def device_facts(workdir="."):
    """What the numbers were measured on: board, L4T/JetPack, power mode, clocks, software
    versions and free disk (MiB) where the agent works."""
    l4t = parse_l4t(_read("/etc/nv_tegra_release"))
    usage = shutil.disk_usage(workdir)
    facts = {
        "agent_version": AGENT_VERSION,
        "hostname": platform.node(),
        "machine": platform.machine(),
        "model": _read("/proc/device-tree/model"),
        "l4t": l4t,
        "jetpack": L4T_TO_JETPACK.get(l4t) if l4t else None,
        "power_mode": parse_nvpmodel(_command(["nvpmodel", "-q"])),
        "gpu_clocks_mhz": _gpu_clocks_mhz(),
        "gpu": gpu_info(),
        "cuda": _cuda_version(),
        "python": platform.python_version(),
        "numpy": _module_version("numpy"),
        "tensorrt": _module_version("tensorrt"),
        "pycuda": _module_version("pycuda"),
        "onnxruntime": _module_version("onnxruntime"),
        "trtexec": find_trtexec(),
        "tegrastats": shutil.which("tegrastats"),
        "free_disk_mib": round(usage.free / 2 ** 20, 1),
    }
    return facts
