"""Deploying a model to a device: copy the ONNX file and the agent over SSH, build and time there,
bring back one JSON result, leave nothing behind.

Engines are not portable (DESIGN §2): the host ships ONNX and the device builds its own engine.
Each deployment works in a fresh `mktemp -d` directory (jetsynth.XXXXXXXX) under the device's
remote_dir, checks free space first, verifies both files by sha256 after the copy and removes the
directory at the end, whatever happened. The agent's stdin stays open while the host waits: when
the host stops waiting (--timeout, Ctrl-C, a killed host, a dropped connection) the agent ends
itself, its programs and its directory; it also ends after the command timeout plus a minute. A
directory still left behind (a power cut) is removed by a later deployment once it is a day old.
Only TensorRT's timing cache is kept on the device between deployments (in the SSH user's
~/.cache/jetsynth/), so a second build of a similar network is faster.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from jetsynth.agent.bundle import bundle
from jetsynth.agent.lifetime import WORKDIR_PREFIX
from jetsynth.devices.deploy_result import DeployFailure, DeployResult, DeployTarget
from jetsynth.devices.inventory import Device
from jetsynth.devices.profiles import disagreements, get_profile
from jetsynth.devices.ssh import Ssh, SshOptions
from jetsynth.errors import JetsynthError
from jetsynth.ship.onnxfile import read_model

AGENT_NAME = "jetsynth_agent.py"
REMOTE_MODEL = "model.onnx"
STALE_MINUTES = 24 * 60
"""A work directory of this user older than this is a leftover and the next deploy removes it."""
AGENT_GRACE_SECONDS = 60
"""The agent ends itself this long after the host's command timeout, if nothing ended it before."""


@dataclass(frozen=True)
class DeployOptions:
    """What the agent is asked to do. `fp16` None: the device profile decides (fp16 on every
    Jetson profile); seconds for `duration`/`warmup`; `min_free_mib` is the headroom the device
    must have beyond the two files (TensorRT writes the engine and scratch files there)."""

    backend: str = "auto"
    batch: int = 1
    fp16: bool | None = None
    duration: float = 3.0
    warmup: float = 0.5
    min_queries: int = 50
    workspace_mib: int = 256
    threads: int = 0
    ort_provider: str = "auto"
    min_free_mib: int = 64


@dataclass(frozen=True)
class _Shipment:
    """What every device of one deployment receives, read and checked once."""

    facts: dict
    model: bytes
    agent: bytes


def _shipment(model: Path) -> _Shipment:
    facts, data = read_model(model)
    return _Shipment(facts, data, agent_source())


def agent_source() -> bytes:
    """The one file shipped as AGENT_NAME: the agent's modules joined by `bundle`."""
    return bundle().encode("utf-8")


def _free_mib(df_output: str) -> float:
    """Available MiB from `df -Pk DIR` (POSIX format: the 4th field of the second line)."""
    lines = df_output.strip().splitlines()
    return int(lines[-1].split()[3]) / 1024.0


def _agent_argv(device: Device, options: DeployOptions, model: dict, workdir: str,
                timeout: float = 900.0) -> list[str]:
    profile = get_profile(device.profile)
    fp16 = options.fp16 if options.fp16 is not None else (profile.fp16 if profile else True)
    argv = [device.python, f"{workdir}/{AGENT_NAME}", "run", f"{workdir}/{REMOTE_MODEL}",
            "--workdir", workdir, "--backend", options.backend, "--batch", str(options.batch),
            "--duration", str(options.duration), "--warmup", str(options.warmup),
            "--min-queries", str(options.min_queries), "--workspace-mib", str(options.workspace_mib),
            "--threads", str(options.threads), "--ort-provider", options.ort_provider,
            "--input-name", model["input_name"], "--input-shape", "x".join(map(str, model["input_shape"])),
            "--timing-cache", "user", "--watch-stdin",
            "--max-seconds", str(int(timeout + AGENT_GRACE_SECONDS)),
            "--fp16" if fp16 else "--no-fp16"]
    return argv


def _agent_result(device: Device, done, python: str) -> dict:
    """The agent's JSON, or one line saying why there is none."""
    out = done.stdout.decode("utf-8", "replace").strip()
    err = done.stderr.decode("utf-8", "replace").strip()
    try:
        result = json.loads(out.splitlines()[-1]) if out else None
    except ValueError:
        result = None
    if isinstance(result, dict) and "error" in result:
        raise JetsynthError(f"{device.label}: {result['error']}")
    if done.returncode == 127 or (done.returncode != 0 and "No such file" in err and python in err):
        raise JetsynthError(f"{device.label}: there is no Python at {python} on the device; set the right "
                            f"one with `jetsynth devices add {device.name} --python PATH --replace`")
    if done.returncode != 0 or not isinstance(result, dict):
        last = (err or out or "no output").splitlines()[-1]
        raise JetsynthError(f"{device.label}: the agent failed (exit {done.returncode}): {last}")
    return result


def deploy(model: Path, device: Device, options: DeployOptions | None = None,
           ssh_options: SshOptions | None = None) -> DeployResult:
    """Copy, build, time on `device`; the agent's result plus host-side timings in seconds
    (`prepare`, `copy`, `agent`, `cleanup`, `total`) and any profile disagreements."""
    return _deploy(_shipment(model), device, options, ssh_options)


def _deploy(shipment: _Shipment, device: Device, options: DeployOptions | None,
            ssh_options: SshOptions | None) -> DeployResult:
    options = options or DeployOptions()
    if options.batch < 1:
        raise JetsynthError(f"`batch` must be at least 1, not {options.batch}", setting="batch")
    timings = {}
    started = time.perf_counter()
    with Ssh(device, ssh_options) as ssh:
        timings["connect"] = time.perf_counter() - started
        result = _deploy_over(ssh, device, options, shipment, timings)
    timings["total"] = time.perf_counter() - started
    profile = get_profile(device.profile)
    return DeployResult(
        agent=result,
        target=DeployTarget(device.name, device.destination, device.port,
                            profile.as_dict() if profile else None),
        model=shipment.facts,
        host_seconds=timings,
        warnings=tuple(disagreements(profile, result.get("device", {})) if profile else ()),
        produced_by=produced_by(result),
    )


_PROVIDER_WORDS = {"CPUExecutionProvider": "on the CPU", "CUDAExecutionProvider": "with CUDA on the GPU",
                   "TensorrtExecutionProvider": "with TensorRT on the GPU"}


def produced_by(result: dict) -> str:
    """Which backend and precision produced a device's figure (`result`: the agent's reply), in
    words: 'TensorRT, fp16 engine' or 'onnxruntime on the CPU, fp32 weights (not TensorRT)'."""
    backend = result.get("backend")
    precision = result.get("precision") or "fp32"
    if backend == "tensorrt":
        return f"TensorRT (Python bindings), {precision} engine on the GPU"
    if backend == "trtexec":
        return f"TensorRT (trtexec), {precision} engine on the GPU"
    provider = result.get("onnxruntime_provider")
    where = _PROVIDER_WORDS.get(provider, f"({provider})" if provider else "")
    return f"onnxruntime {where}, {precision} weights (not TensorRT)".replace("  ", " ")


_PREPARE = (
    # $1 remote dir, $2 mktemp template, $3 work directory name pattern, $4 minutes: first remove
    # this user's own work directories left there more than a day ago, then make a new one
    'find "$1" -mindepth 1 -maxdepth 1 -type d -name "$3" -user "$(id -u)" -mmin +"$4" '
    '-exec rm -rf -- {} + 2>/dev/null; '
    'd=$(mktemp -d "$2") && echo "$d" && df -Pk "$d"'
)


def _deploy_over(ssh: Ssh, device: Device, options: DeployOptions, shipment: _Shipment,
                 timings: dict) -> dict:
    """The steps of one deployment on an open connection; fills `timings` (seconds)."""
    started = time.perf_counter()
    base = device.remote_dir.rstrip("/") or "/"
    template = posixpath.join(base, WORKDIR_PREFIX + "XXXXXXXX")
    prepared = ssh.run(["sh", "-c", _PREPARE, "sh", base, template, WORKDIR_PREFIX + "????????",
                        str(STALE_MINUTES)], what="preparing a work directory")
    if prepared.returncode != 0:
        message = prepared.stderr.decode("utf-8", "replace").strip().splitlines()
        raise JetsynthError(f"{device.label}: cannot make a work directory in {base}: "
                            f"{message[-1] if message else 'unknown error'}; choose another `remote_dir`",
                            setting="remote_dir")
    lines = prepared.stdout.decode("utf-8", "replace").splitlines()
    workdir = lines[0] if lines else ""
    if (posixpath.dirname(workdir) != base
            or not posixpath.basename(workdir).startswith(WORKDIR_PREFIX)):
        raise JetsynthError(f"{device.label}: unexpected work directory '{workdir}' from mktemp")
    timings["prepare"] = time.perf_counter() - started
    try:
        free = _free_mib("\n".join(lines[1:]))
        needed = (len(shipment.model) + len(shipment.agent)) / 2**20 + options.min_free_mib
        if free < needed:
            raise JetsynthError(f"{device.label}: only {free:.1f} MiB free in {base}, deploy needs "
                                f"{needed:.1f} MiB (model, agent, engine); free space there or choose "
                                "another `remote_dir`", setting="remote_dir")
        t0 = time.perf_counter()
        ssh.put(shipment.agent, f"{workdir}/{AGENT_NAME}")
        ssh.put(shipment.model, f"{workdir}/{REMOTE_MODEL}")
        checked = ssh.run(["sh", "-c", 'for f; do sha256sum < "$f" || exit 1; done', "sh",
                           f"{workdir}/{AGENT_NAME}", f"{workdir}/{REMOTE_MODEL}"],
                          what="checking the copy")
        # one "DIGEST  -" line per file: the paths (spaces and all) are not in the output
        digests = [line.split()[0] for line in checked.stdout.decode().splitlines() if line.split()]
        expected = [hashlib.sha256(shipment.agent).hexdigest(), shipment.facts["sha256"]]
        if checked.returncode != 0 or digests != expected:
            raise JetsynthError(f"{device.label}: the copied files do not match (sha256); the transfer was "
                                "corrupted or the disk is failing")
        timings["copy"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        done = ssh.run(_agent_argv(device, options, shipment.facts, workdir,
                                   ssh.options.command_timeout),
                       what="the agent", hold_stdin=True)
        timings["agent"] = time.perf_counter() - t0
        result = _agent_result(device, done, device.python)
    finally:
        failing = sys.exc_info()[1]
        t0 = time.perf_counter()
        try:
            ssh.run(["rm", "-rf", "--", workdir], what="cleaning up")
        except JetsynthError:
            if failing is None:
                raise
            # else the step that failed first is the error worth reporting
        timings["cleanup"] = time.perf_counter() - t0
    return result


def deploy_many(model: Path, devices: list[Device], options: DeployOptions | None = None,
                ssh_options: SshOptions | None = None) -> list[DeployResult | DeployFailure]:
    """Deploy to several devices at once. Each entry is the device's result, or its failure
    when that device failed; the others still finish."""
    shipment = _shipment(model)

    def one(device: Device) -> DeployResult | DeployFailure:
        try:
            return _deploy(shipment, device, options, ssh_options)
        except JetsynthError as exc:
            return DeployFailure(device.name, str(exc), device.destination)

    with ThreadPoolExecutor(max_workers=max(1, len(devices))) as pool:
        return list(pool.map(one, devices))


def probe(device: Device, ssh_options: SshOptions | None = None) -> dict:
    """The device's facts (JetPack/L4T, TensorRT, CUDA, GPU, power mode, free disk in its
    remote_dir): the agent is streamed to the device's Python on stdin, nothing is written."""
    ssh = Ssh(device, ssh_options)
    done = ssh.run([device.python, "-", "facts", "--workdir", device.remote_dir], stdin=agent_source(),
                   what="the probe")
    facts = _agent_result(device, done, device.python)
    profile = get_profile(device.profile)
    facts["warnings"] = disagreements(profile, facts) if profile else []
    return facts
