"""Where members train: the executor interface over the member pipeline's self-contained
training step, with the local executor (this process: one member at a time, or one per GPU at a
time on a machine with several) and the Ray executor (`ray_executor`, imported only when asked
for).

An executor takes the generation's tasks as an iterable it may consume lazily (the local
executor breeds each member just before training it, as a sequential run always did; the Ray
executor breeds them all and submits them at once) and yields each (task, trained result) as it
finishes, in any order. The caller records each result as it arrives, so a driver killed
mid-generation keeps every member that finished.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Protocol, TypeVar

from jetsynth.data.dataset import Dataset
from jetsynth.errors import JetsynthError
from jetsynth.nn.device import describe, resolve_amp, resolve_devices
from jetsynth.run.config import EvolveConfig
from jetsynth.run.member import MemberTask, train_member
from jetsynth.run.train import TrainResult

StepHook = Callable[[int, int], None]
T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    def train(self, tasks: Iterable[MemberTask], on_step: StepHook
              ) -> Iterator[tuple[MemberTask, TrainResult]]:
        """Train every task; yield each with its result as soon as it is done. `on_step(done,
        total)` reports optimiser steps where the executor can see them."""

    def close(self) -> None:
        """Stop whatever is still running and let go of what the executor started."""


def placed(task: MemberTask, device: str) -> MemberTask:
    """`task` trained on `device`."""
    return replace(task, training=replace(task.training, device=device))


def spread(tasks: Iterable[T], devices: list[str], work: Callable[[T, str], R]
           ) -> Iterator[tuple[T, R]]:
    """work(task, device) for every task, each device running one task at a time, all devices
    at once (a thread per device: torch releases the GIL while a GPU computes); a task is taken
    from `tasks` only when a device is free for it, the lowest-numbered free device first.
    Yields (task, result) as each finishes. An error ends the iteration once the tasks already
    running have finished (their devices are not left mid-step)."""
    source = iter(tasks)
    free = list(devices)
    running: dict[Future, tuple[T, str]] = {}
    with ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="jetsynth-train") as pool:
        exhausted = False
        while True:
            while free and not exhausted:
                task = next(source, None)
                if task is None:
                    exhausted = True
                    break
                device = free.pop(0)
                running[pool.submit(work, task, device)] = (task, device)
            if not running:
                return
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: devices.index(running[f][1])):
                task, device = running.pop(future)
                free.append(device)
                free.sort(key=devices.index)
                yield task, future.result()


class LocalExecutor:
    """Members trained in this process, checkpointing finished epochs into the run directory (a
    killed run resumes the member being trained from its last epoch): one at a time on
    `devices[0]`, or, given several devices (every GPU of the machine), one per device at a
    time."""

    def __init__(self, dataset: Dataset, devices: list[str] | None = None):
        self.dataset = dataset
        self.devices = list(devices or ["cpu"])

    def train(self, tasks: Iterable[MemberTask], on_step: StepHook
              ) -> Iterator[tuple[MemberTask, TrainResult]]:
        if len(self.devices) == 1:
            for task in tasks:
                yield task, train_member(placed(task, self.devices[0]), self.dataset, on_step)
            return
        yield from spread(tasks, self.devices,
                          lambda task, device: train_member(placed(task, device), self.dataset, on_step))

    def close(self) -> None:
        pass


def placement(config: EvolveConfig, gpus: Callable[[], int] | None = None) -> list[str]:
    """The devices the local executor trains on (`nn.device.resolve_devices` of --device on this
    machine); [] for Ray, where members train where Ray places them (on the GPU Ray assigns with
    --gpus-per-member, else a worker's CPU). A device this machine lacks, or --amp fp16 on the
    CPU, ends here with one line, before anything is written. config.json keeps --device as
    given, so a resumed run resolves it on the machine it resumes on; each member's record
    says where it trained. `gpus()` counts this machine's GPUs (tests pass their own)."""
    if config.executor == "ray":
        if config.amp is not None:
            resolve_amp(config.amp, "cuda" if config.gpus_per_member > 0 else "cpu")
        return []
    devices = resolve_devices(config.device) if gpus is None else resolve_devices(config.device, gpus)
    if config.amp is not None:
        resolve_amp(config.amp, devices[0])
    return devices


def placement_line(config: EvolveConfig, devices: list[str]) -> str:
    """The one line saying what trains the run's members (`placement`'s devices)."""
    if not devices:
        where = ("the GPU Ray assigns each member (--gpus-per-member)" if config.gpus_per_member > 0
                 else "the CPUs of Ray's workers")
        return f"training on {where}, --amp {config.amp or 'default for the device'}"
    return describe(devices, resolve_amp(config.amp, devices[0]))


def open_executor(config: EvolveConfig, dataset: Dataset, devices: list[str] | None = None
                  ) -> Executor:
    """The executor --executor names, connected and ready (a Ray cluster that cannot be reached,
    or Ray not installed, ends here with one line, before the run directory is touched);
    `devices`: where the local executor trains (`placement`)."""
    if config.executor == "ray":
        try:
            from jetsynth.run.ray_executor import RayExecutor
        except ImportError as exc:
            if (exc.name or "").split(".")[0] != "ray":
                raise
            raise JetsynthError("`executor` ray needs Ray, which is not installed here: "
                                "pip install 'jetsynth[ray]' (or use `executor` local)",
                                setting="executor") from None
        return RayExecutor(dataset, config.ray_address, config.cpus_per_member,
                           config.gpus_per_member)
    return LocalExecutor(dataset, devices)
