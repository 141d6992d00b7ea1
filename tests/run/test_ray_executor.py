"""The Ray executor on a real local Ray (2 CPUs, the `ray_cluster` fixture): the same members as
the local executor, a killed worker retried, a killed driver resumed, and one clear line when
Ray is missing or unreachable."""

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from jetsynth.core.records import MemberRecord
from jetsynth.run.config import EvolveConfig
from jetsynth.run.evolve import evolve
from jetsynth.run.rundir import RunDirectory
from jetsynth.storage import read_jsonl

TINY = EvolveConfig(data="digits", subset=0.3, generations=2, population=3, ancestor_epochs=1,
                    epochs=2, keep=0.6, seed=7)
CLI_TINY = ["--data", "digits", "--subset", "0.3", "--generations", "2", "--population", "3",
            "--ancestor-epochs", "1", "--epochs", "2", "--keep", "0.6", "--seed", "7"]


def _essence(run_dir: Path, records: list[MemberRecord]) -> list:
    """Every member's record without its wall time, and its masks."""
    run = RunDirectory(run_dir)
    return [({k: v for k, v in r.to_json().items() if k != "train_seconds"},
             {name: mask.tolist() for name, mask in run.masks(r.id).items()}) for r in records]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """TINY on the local executor with one torch thread (what a 1-CPU Ray task uses: the
    same thread count gives bit-identical training)."""
    run_dir = tmp_path_factory.mktemp("local") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        records = evolve(TINY, run_dir)
    finally:
        torch.set_num_threads(threads)
    return _essence(run_dir, records)


def test_ray_gives_the_local_executors_members(ray_cluster, reference, tmp_path):
    run_dir = tmp_path / "run"
    records = evolve(replace(TINY, executor="ray"), run_dir)
    assert _essence(run_dir, records) == reference
    events = read_jsonl(run_dir / "events.jsonl")
    assert sorted(e["member"] for e in events if e["event"] == "member_done") == [
        "g01-m00", "g02-m00", "g02-m01", "g02-m02"]
    assert not list(run_dir.rglob("checkpoint*")), "workers write nothing in the run directory"


def _training_workers(prefix: str) -> list[int]:
    """PIDs of Ray worker processes running a member whose id starts with `prefix` (Ray titles
    a worker with its task's name)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                title = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(f"ray::jetsynth-train-{prefix}".encode()):
                found.append(int(entry))
    return found


def test_a_worker_killed_mid_training_is_retried(ray_cluster, reference, tmp_path):
    killed = []

    def kill_one_offspring_worker():
        deadline = time.monotonic() + 240
        while not killed and time.monotonic() < deadline:
            for pid in _training_workers("g02"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_offspring_worker, daemon=True)
    killer.start()
    run_dir = tmp_path / "run"
    records = evolve(replace(TINY, executor="ray"), run_dir)
    killer.join()
    assert killed, "no worker was seen training an offspring"
    assert _essence(run_dir, records) == reference


def test_a_driver_killed_mid_generation_resumes_without_retraining(ray_cluster, reference, tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "jetsynth", "evolve", "--run-dir", str(run_dir), *CLI_TINY,
               "--executor", "ray", "--ray-address", ray_cluster]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events = run_dir / "events.jsonl"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            if any(e.get("member", "").startswith("g02") for e in read_jsonl(events)
                   if e["event"] == "member_done"):
                break
            time.sleep(0.01)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    before = [e["member"] for e in read_jsonl(events) if e["event"] == "member_done"]
    assert "g01-m00" in before and len(before) < 4, before
    records = evolve(replace(TINY, executor="ray"), run_dir, resume=True)
    assert _essence(run_dir, records) == reference
    done = [e["member"] for e in read_jsonl(events) if e["event"] == "member_done"]
    assert sorted(done) == ["g01-m00", "g02-m00", "g02-m01", "g02-m02"], "a member was trained twice"


def _evolve_cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from jetsynth.cli.main import main; main()", "evolve",
                           *args], capture_output=True, text=True, timeout=120, env=env)


def test_an_unreachable_address_is_one_line_and_exit_2(tmp_path):
    pytest.importorskip("ray")
    result = _evolve_cli("--run-dir", str(tmp_path / "run"), "--executor", "ray",
                         "--ray-address", "127.0.0.1:1")
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot reach a Ray cluster at 127.0.0.1:1 ")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_ray_missing_is_one_line_and_exit_2(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from jetsynth.cli.main import main; main()")
    result = subprocess.run([sys.executable, "-c", code, "evolve", "--run-dir", str(tmp_path / "run"),
                             "--executor", "ray"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --executor ray needs Ray, which is not installed here: pip install 'jetsynth[ray]' "
        "(or use --executor local)"]
