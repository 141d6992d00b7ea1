"""Every path of jetsynth that needs a GPU, in one call (`tools/gpu_check.sh`), in under eight
minutes; prints one JSON summary with each check's figures, `ok`, and the reason of any check
skipped or failed. Run it whenever a machine with an NVIDIA GPU is at hand.

Checks: training on CUDA in the default mixed precision (records say cuda and bf16/fp16); a
seeded generation on the CPU and on the GPU, both fp32, giving the same masks and accuracy within
noise; ResNet-18 at 224 px through jetsynth's loop against a plain torch AMP loop (target ≥ 0.9×);
members of a generation spread over several GPUs (when there are); `grow --device cuda:0` (records
say cuda:0 and the default mixed precision); a timing of a network on the GPU while a member
trains on it (`nn.gpu_lock`: no training step during the timing, and the timing as fast as on an
idle GPU); `bench --backend torch-cuda` and `ort-cuda`; a TensorRT engine built and timed (`pip
install tensorrt` tried when missing).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from jetsynth.core.records import MemberRecord

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
BUDGET_S = 450


def jetsynth(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "jetsynth", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def last_json(text: str) -> dict:
    return json.loads(text[text.index("{"):])


def evolve(run: Path, *options: str) -> list[MemberRecord]:
    result = jetsynth("evolve", "--data", "digits", "--subset", "0.5", "--seed", "3",
                      "--run-dir", str(run), *options)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else
                           f"exit {result.returncode}")
    return [MemberRecord.read(p) for p in sorted((run / "members").glob("*/member.json"))]


def check_environment() -> dict:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(f"torch {torch.__version__} finds no CUDA GPU")
    return {"torch": torch.__version__, "cuda": torch.version.cuda,
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            "bf16": torch.cuda.is_bf16_supported(), "ok": True}


def check_training(work: Path) -> dict:
    started = time.perf_counter()
    records = evolve(work / "cuda", "--generations", "2", "--population", "2",
                     "--ancestor-epochs", "3", "--epochs", "1", "--device", "cuda:0")
    return {"seconds": round(time.perf_counter() - started, 1),
            "placements": sorted({(r.device, r.amp) for r in records}),
            "accuracies": [round(r.accuracy, 4) for r in records],
            "ok": all(r.device == "cuda:0" and r.amp in ("bf16", "fp16") for r in records)
            and records[0].accuracy > 0.8}


def check_parity(work: Path) -> dict:
    """The same seeded generation trained on the CPU and on the GPU, both fp32."""
    from jetsynth.run.rundir import RunDirectory

    options = ("--generations", "2", "--population", "2", "--ancestor-epochs", "3", "--epochs", "1",
               "--amp", "off")
    cpu = evolve(work / "parity-cpu", *options, "--device", "cpu")
    gpu = evolve(work / "parity-gpu", *options, "--device", "cuda:0")
    agree, total = 0, 0
    for record in cpu:
        a = RunDirectory(work / "parity-cpu").genome(record.id).masks
        b = RunDirectory(work / "parity-gpu").genome(record.id).masks
        for name in a:
            agree += int((a[name] == b[name]).sum())
            total += a[name].numel()
    drift = max(abs(c.accuracy - g.accuracy) for c, g in zip(cpu, gpu, strict=True))
    return {"mask_agreement": round(agree / total, 5), "largest_accuracy_difference": round(drift, 4),
            "ok": agree / total >= 0.95 and drift <= 0.03}


def check_loop_speed(work: Path) -> dict:
    """ResNet-18, 224 px, batch 64: jetsynth's fit (its default AMP) against a plain AMP loop."""
    from dataclasses import replace

    import numpy as np
    import torch
    from bench_scale import make_folder
    from torch import nn

    from jetsynth.core.genome import ancestor_genome, topology_for
    from jetsynth.data.load import DataSpec, load_dataset
    from jetsynth.nn.compact import compact
    from jetsynth.nn.device import AMP_DTYPES, resolve_amp
    from jetsynth.nn.models import resolve_factory
    from jetsynth.run.train import TrainConfig, fit

    os.environ["JETSYNTH_CACHE_DIR"] = str(work / "cache")
    folder = make_folder(work / "photos", 640)
    data = load_dataset(DataSpec.parse(f"folder:{folder}", input_size=224))
    batch, steps = 64, 8
    rows = np.arange(batch * steps)
    data = replace(data, train_x=data.train_x.subset(rows), train_y=data.train_y[rows])
    amp = resolve_amp(None, "cuda:0")
    factory = resolve_factory("resnet18", True)
    genome = ancestor_genome("resnet18", data.input_shape, data.classes, 0,
                             topology_for("resnet18", data.input_shape, data.classes, factory))

    def network():
        return compact(genome.build(), genome.topology, genome.masks).model.cuda()

    def ours() -> float:
        net = network()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        torch.cuda.synchronize()
        started = time.perf_counter()
        fit(net, data, TrainConfig(epochs=1, batch_size=batch, device="cuda:0", amp=amp), optimizer,
            torch.Generator().manual_seed(0), after_step=lambda: None)
        torch.cuda.synchronize()
        return len(rows) / (time.perf_counter() - started)

    def plain() -> float:
        net = network().to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
        batches = [(data.train_x[rows[s:s + batch]].cuda(), data.train_y[rows[s:s + batch]].cuda())
                   for s in range(0, len(rows), batch)]  # prepared beforehand: the best case
        torch.cuda.synchronize()
        started = time.perf_counter()
        for images, labels in batches:
            optimizer.zero_grad()
            with torch.autocast("cuda", dtype=AMP_DTYPES[amp]):
                loss = nn.functional.cross_entropy(net(images.contiguous(
                    memory_format=torch.channels_last)), labels)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        torch.cuda.synchronize()
        return len(rows) / (time.perf_counter() - started)

    ours(), plain()
    a = max(ours() for _ in range(3))
    b = max(plain() for _ in range(3))
    return {"amp": amp, "jetsynth_images_per_s": round(a, 1), "plain_amp_images_per_s": round(b, 1),
            "ratio": round(a / b, 3), "ok": a / b >= 0.9}


def check_spread(work: Path) -> dict:
    import torch

    if torch.cuda.device_count() < 2:
        return {"skipped": "one GPU: nothing to spread over"}
    records = evolve(work / "spread", "--generations", "2", "--population", "4", "--ancestor-epochs",
                     "1", "--epochs", "1", "--device", "cuda")
    used = sorted({r.device for r in records[1:]})
    return {"devices": used, "ok": len(used) > 1}


def check_grow(work: Path) -> dict:
    """`grow` on the GPU: the population trains and is evaluated there, in mixed precision."""
    run = work / "grow"
    result = jetsynth("grow", "--device", "cuda:0", "--iterations", "1", "--keep-best", "1",
                      "--population", "2", "--initial-steps", "200", "--steps", "50",
                      "--run-dir", str(run), "--json")
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else
                           f"exit {result.returncode}")
    summary = last_json(result.stdout)
    records = [MemberRecord.read(p) for p in sorted((run / "members").glob("*/member.json"))]
    return {"device": summary["device"], "amp": summary["amp"],
            "best_val_accuracy": round(summary["final"][0]["val_accuracy"], 4),
            "ok": summary["device"] == "cuda:0" and summary["amp"] in ("bf16", "fp16")
            and all(r.device == "cuda:0" for r in records)}


def check_timing_lock(work: Path) -> dict:
    """A LeNet-5 timed with torch-cuda holding the GPU's turn, alone and while a small CNN
    trains on the same GPU in another thread: no training step may end during the timing, and
    the timing beside training must be within 20 % of the one alone."""
    import threading

    import torch

    from jetsynth.core.genome import ancestor_genome
    from jetsynth.data.load import DataSpec, load_dataset
    from jetsynth.nn.gpu_lock import gpu_turn
    from jetsynth.run.train import TrainConfig, fit
    from jetsynth.ship.bench import TorchRunner, measure

    data = load_dataset(DataSpec.parse("digits"))
    timed = ancestor_genome("lenet5", data.input_shape, data.classes, 0).build()
    steps: list[int] = []
    stop = threading.Event()

    def timing() -> tuple[float, int]:
        with TorchRunner(timed, data.input_shape, "torch-cuda") as runner, gpu_turn("cuda:0"):
            before = len(steps)
            fps = measure(runner, 1, warmup_seconds=0.2, min_seconds=0.5).fps
            return fps, len(steps) - before

    def progress(done: int, _total: int) -> None:
        steps.append(done)
        if stop.is_set():
            raise InterruptedError

    def train() -> None:
        net = ancestor_genome("small-cnn", data.input_shape, data.classes, 0).build().cuda()
        with contextlib.suppress(InterruptedError):
            fit(net, data, TrainConfig(epochs=200, batch_size=64, device="cuda:0", amp="off"),
                torch.optim.Adam(net.parameters()), torch.Generator().manual_seed(0),
                on_step=progress)

    alone, _ = timing()
    trainer = threading.Thread(target=train)
    trainer.start()
    try:
        while not steps and trainer.is_alive():
            time.sleep(0.05)
        beside, during = timing()
        after = len(steps)
        time.sleep(0.5)
        resumed = len(steps) > after
    finally:
        stop.set()
        trainer.join(60)
    return {"alone_fps": round(alone, 1), "beside_training_fps": round(beside, 1),
            "ratio": round(beside / alone, 3), "steps_ended_during_timing": during,
            "training_went_on": resumed,
            "ok": during <= 1 and resumed and beside / alone >= 0.8}


def check_benches(work: Path) -> dict:
    member = work / "cuda" / "members" / "g02-m00"
    out: dict = {}
    timed = jetsynth("bench", str(member), "--backend", "torch-cuda", "--duration", "0.5", "--json")
    out["torch_cuda"] = (last_json(timed.stdout) if timed.returncode == 0
                         else {"failed": timed.stderr.strip()[-300:]})
    onnx = work / "member.onnx"
    exported = jetsynth("export", str(work / "cuda"), "-g", "2", "-m", "0", "-o", str(onnx))
    if exported.returncode != 0:
        out["export"] = {"failed": exported.stderr.strip()[-300:]}
        return out
    timed = jetsynth("bench", str(onnx), "--backend", "ort-cuda", "--duration", "0.5", "--json")
    out["ort_cuda"] = (last_json(timed.stdout) if timed.returncode == 0
                       else {"skipped": timed.stderr.strip()[-300:]})
    out["ok"] = "fps" in out["torch_cuda"]
    return out


def check_tensorrt(work: Path) -> dict:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "tensorrt"],
                                   capture_output=True, text=True, timeout=150)
        if installed.returncode != 0:
            return {"skipped": "pip install tensorrt failed: "
                               + (installed.stderr.strip().splitlines() or ["?"])[-1][:200]}
    onnx = work / "member.onnx"
    engine = work / "member.engine"
    started = time.perf_counter()
    built = jetsynth("build", str(onnx), "-o", str(engine), "--precision", "fp16", "--json", timeout=200)
    if built.returncode != 0:
        return {"failed": built.stderr.strip()[-300:]}
    seconds = round(time.perf_counter() - started, 1)
    timed = jetsynth("bench", str(engine), "--backend", "trt", "--duration", "0.5", "--json")
    if timed.returncode != 0:
        return {"build_seconds": seconds, "failed": timed.stderr.strip()[-300:]}
    return {"build_seconds": seconds, "timing": last_json(timed.stdout), "ok": True}


CHECKS = [("environment", check_environment), ("training", check_training),
          ("parity", check_parity), ("loop_speed", check_loop_speed), ("spread", check_spread),
          ("grow", check_grow), ("timing_lock", check_timing_lock), ("benches", check_benches),
          ("tensorrt", check_tensorrt)]


def main() -> None:
    started = time.perf_counter()
    summary: dict = {}
    with tempfile.TemporaryDirectory(prefix="jetsynth-gpu-check-") as where:
        work = Path(where)
        for name, check in CHECKS:
            if time.perf_counter() - started > BUDGET_S:
                summary[name] = {"skipped": f"out of the {BUDGET_S} s budget"}
                continue
            began = time.perf_counter()
            try:
                summary[name] = check() if name == "environment" else check(work)
            except Exception as exc:  # a check that fails is reported, the others still run
                summary[name] = {"failed": f"{type(exc).__name__}: {exc}",
                                 "where": traceback.format_exc().strip().splitlines()[-3:]}
            summary[name]["check_seconds"] = round(time.perf_counter() - began, 1)
            if name == "environment" and "failed" in summary[name]:
                break
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["ok"] = all(part.get("ok", "skipped" in part) for part in summary.values()
                        if isinstance(part, dict))
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
