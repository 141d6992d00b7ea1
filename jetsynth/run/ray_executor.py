"""Members trained in parallel as Ray tasks (`--executor ray`), on a local Ray started for the
run or on a cluster (`--ray-address`). Imported only when asked for: Ray is an optional extra.

What crosses the wire is data: each genome goes out and comes back as one safetensors blob
(`genome_bytes`), with its seed, training settings and the dataset, which is put in Ray's object
store once per run (a node fetches it once, not once per member). The driver keeps the run
directory, the single source of truth: workers write nothing there, the driver records each
member as its result arrives. A worker that dies mid-training (killed, out of memory, its node
lost) is retried by Ray, from the start of that member's training, up to MEMBER_RETRIES times;
with the same seed it trains to the same result.
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Iterable, Iterator
from dataclasses import replace

import ray
import torch

from jetsynth.core.genome import blob_header, genome_bytes, genome_from_bytes, topology_for
from jetsynth.data.dataset import Dataset
from jetsynth.errors import JetsynthError
from jetsynth.nn.models import resolve_factory
from jetsynth.nn.structure import Topology
from jetsynth.run.member import MemberTask, train_member
from jetsynth.run.train import TrainConfig, TrainResult

MEMBER_RETRIES = 3
CONNECT_SECONDS = 5.0
TASK_PREFIX = "jetsynth-train-"
"""Each member's task is named TASK_PREFIX + its id (in `ray list tasks`, the dashboard, and
the title of the worker process running it: `ray::jetsynth-train-g02-m01`)."""


def train_on_worker(blob: bytes, seed: int, training: TrainConfig, dataset: Dataset,
                    threads: int) -> tuple[bytes, dict]:
    """The Ray task: train the genome in `blob` with `threads` torch threads (the CPUs Ray gave
    the task), on the GPU Ray assigned it when it asked for one (`worker_device`), and return
    the trained genome's blob and its metrics."""
    torch.set_num_threads(threads)
    header = blob_header(blob)
    topology = _traced(header["arch"], tuple(header["input_shape"]), header["num_classes"])
    training = replace(training, device=worker_device(ray.get_gpu_ids()))
    result = train_member(MemberTask(genome_from_bytes(blob, topology), seed, training), dataset)
    return genome_bytes(result.genome), result.metrics


def worker_device(gpu_ids: list) -> str:
    """The torch device of a task Ray assigned `gpu_ids` (ray.get_gpu_ids()): Ray limits the
    worker's CUDA_VISIBLE_DEVICES to them, so the first is cuda:0 there; none: the CPU."""
    return "cuda:0" if gpu_ids else "cpu"


@functools.lru_cache(maxsize=8)
def _traced(arch: str, input_shape: tuple[int, int, int], classes: int) -> Topology:
    """The architecture traced once per worker process. User code (`module:function`,
    `file.py:function`) is imported here because the driver already resolved it on the user's
    word: a task is only ever submitted after that."""
    return topology_for(arch, input_shape, classes, resolve_factory(arch, trusted=True))


class RayExecutor:
    """Submits a generation's members as Ray tasks of `cpus` CPUs (and `gpus` GPUs) each and
    yields them as they finish. `address`: None starts a local Ray (or joins the one already
    running on this machine), else `auto`, HOST:PORT or ray://HOST:PORT. A Ray this process
    already initialised (a notebook, the test suite) is used as it is and left running."""

    def __init__(self, dataset: Dataset, address: str | None, cpus: int, gpus: float):
        self.connected = connect(address)
        try:
            self.cpus, self.gpus = cpus, gpus
            if self.connected and address is None:
                check_fits(cpus, gpus)
            self.dataset = ray.put(dataset)
            self.remote = ray.remote(train_on_worker)
            self.resources = {"num_cpus": cpus, "num_gpus": gpus, "max_retries": MEMBER_RETRIES,
                              "retry_exceptions": False}
            self.pending: dict = {}
        except BaseException:
            self.close()
            raise

    def train(self, tasks: Iterable[MemberTask], on_step=None
              ) -> Iterator[tuple[MemberTask, TrainResult]]:
        for task in tasks:
            ref = self.remote.options(name=TASK_PREFIX + task.id, **self.resources).remote(
                genome_bytes(task.genome), task.seed, task.training, self.dataset, int(self.cpus))
            self.pending[ref] = task
        while self.pending:
            (ref,), _ = ray.wait(list(self.pending), num_returns=1)
            task = self.pending.pop(ref)
            blob, metrics = _result(ref, task)
            yield task, TrainResult(genome_from_bytes(blob, task.genome.topology), metrics)

    def close(self) -> None:
        """Cancel the members still in flight (a run stopped by an error or Ctrl-C), and
        disconnect when this executor connected (a local Ray it started stops with it)."""
        for ref in getattr(self, "pending", {}):
            ray.cancel(ref, force=True)
        self.pending = {}
        if self.connected:
            ray.shutdown()
            self.connected = False


def _result(ref, task: MemberTask) -> tuple[bytes, dict]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, JetsynthError):
            raise JetsynthError(f"{task.id}: {exc.cause}") from None
        raise
    except ray.exceptions.RayError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JetsynthError(
            f"{task.id} could not be trained on Ray ({reason}) after {MEMBER_RETRIES} retries; the "
            "members that finished are saved: resume with `resume` once the cluster is healthy",
            setting="resume"
        ) from None


def connect(address: str | None) -> bool:
    """Connect this process to Ray (start a local one for None); False when it already was.
    An address that does not answer fails within CONNECT_SECONDS with one line."""
    if ray.is_initialized():
        return False
    if address not in (None, "auto"):
        check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError, OSError, ImportError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JetsynthError(f"cannot connect to Ray at {address or 'a new local instance'} "
                            f"({reason}); start a cluster with `ray start `head``, check "
                            "`ray_address`, or leave it out for a local Ray",
                            setting=("head", "ray_address")) from None
    return True


def check_reachable(address: str) -> None:
    """Fail with one line unless something listens at HOST:PORT (Ray itself would keep
    retrying an unreachable address for minutes)."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not host or not port.isdigit():
        raise JetsynthError(f"`ray_address` {address}: expected auto, HOST:PORT or ray://HOST:PORT",
                            setting="ray_address")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise JetsynthError(f"cannot reach a Ray cluster at {address} ({exc.strerror or exc}); start "
                            "one there with `ray start `head``, or check `ray_address`",
                            setting=("head", "ray_address")) from None


def check_fits(cpus: int, gpus: float) -> None:
    """A member must fit on the local Ray, or it would wait forever."""
    have = ray.cluster_resources()
    if cpus > have.get("CPU", 0) or gpus > have.get("GPU", 0):
        raise JetsynthError(
            f"a member asks for {cpus} CPU(s) and {gpus:g} GPU(s) but this machine's Ray has "
            f"{have.get('CPU', 0):g} CPU(s) and {have.get('GPU', 0):g} GPU(s): lower "
            "`cpus_per_member` / `gpus_per_member`", setting=("cpus_per_member", "gpus_per_member")
        )
