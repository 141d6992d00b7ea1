"""GPU turns with real threads and a real second process, on the CPU: the device strings name
GPUs for the lock only (torch never runs on them here)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jetsynth.nn.gpu_lock import GPU_BACKENDS, backend_turn, gpu_name, gpu_turn, lock_folder
from jetsynth.storage import try_lock, unlock


def test_only_gpus_are_named_and_the_default_gpu_is_the_first(monkeypatch, tmp_path):
    assert gpu_name("cpu") is None
    assert gpu_name("cuda") == gpu_name("cuda:0") != gpu_name("cuda:1")
    monkeypatch.setenv("JETSYNTH_GPU_LOCKS", str(tmp_path / "locks"))
    assert lock_folder() == tmp_path / "locks"
    assert set(GPU_BACKENDS) == {"ort-cuda", "ort-trt", "torch-cuda", "trt"}


def _inside_together(device_a: str, device_b: str, folder: Path) -> bool:
    """Whether two threads can be inside turns on the two devices at the same time."""
    both = threading.Barrier(2, timeout=3)
    met = []

    def enter(device):
        with gpu_turn(device, folder):
            try:
                both.wait()
                met.append(device)
            except threading.BrokenBarrierError:
                pass

    threads = [threading.Thread(target=enter, args=(d,)) for d in (device_a, device_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(met) == 2


def test_the_cpu_takes_no_turns_and_two_gpus_do_not_wait_for_each_other(tmp_path):
    assert _inside_together("cpu", "cpu", tmp_path / "locks")
    assert _inside_together("cuda:0", "cuda:1", tmp_path / "locks")
    assert not _inside_together("cuda:0", "cuda", tmp_path / "locks")
    assert not any((tmp_path / "locks").glob("*cpu*"))


def test_timing_and_training_steps_on_one_gpu_never_overlap(tmp_path):
    folder = tmp_path / "locks"
    steps: list[tuple[float, float]] = []
    timings: list[tuple[float, float]] = []
    started = threading.Event()

    def train():
        for index in range(40):
            with gpu_turn("cuda:0", folder):
                begin = time.perf_counter()
                time.sleep(0.005)
                steps.append((begin, time.perf_counter()))
            if index == 3:
                started.set()

    def time_members():
        started.wait(10)
        for _ in range(3):
            with backend_turn("ort-cuda", folder):
                begin = time.perf_counter()
                time.sleep(0.05)
                timings.append((begin, time.perf_counter()))

    threads = [threading.Thread(target=train), threading.Thread(target=time_members)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(steps) == 40 and len(timings) == 3
    for begin, end in timings:
        assert not [s for s in steps if s[0] < end and begin < s[1]]  # no step during a timing
    assert steps[0][0] < timings[0][0] and timings[-1][1] <= steps[-1][0] + 1  # interleaved


def test_a_gpu_held_by_another_process_waits(tmp_path):
    folder = tmp_path / "locks"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys\nfrom jetsynth.nn.gpu_lock import gpu_turn\n"
         f"with gpu_turn('cuda:0', {str(folder)!r}):\n"
         "    print('held', flush=True)\n    sys.stdin.readline()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = folder / f"{gpu_name('cuda:0')}.lock"
        assert try_lock(lock) is None  # the other process has it
        entered = threading.Event()

        def wait_for_turn():
            with gpu_turn("cuda:0", folder):
                entered.set()

        waiting = threading.Thread(target=wait_for_turn)
        waiting.start()
        assert not entered.wait(0.5)
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert entered.wait(10)
        waiting.join()
        fd = try_lock(lock)
        assert fd is not None
        unlock(fd)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


@pytest.mark.parametrize("backend", ["ort-cpu", "torch-cpu"])
def test_cpu_backends_take_no_turn(tmp_path, backend):
    with backend_turn(backend, tmp_path / "locks"):
        pass
    assert not (tmp_path / "locks").exists()
