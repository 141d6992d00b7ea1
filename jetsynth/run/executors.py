"""Where members train: the executor interface over the member pipeline's self-contained
training step, with the local executor (this process, one member at a time) and the Ray
executor (`ray_executor`, imported only when asked for).

An executor takes the generation's tasks as an iterable it may consume lazily (the local
executor breeds each member just before training it, as a sequential run always did; the Ray
executor breeds them all and submits them at once) and yields each (task, trained result) as it
finishes, in any order. The caller records each result as it arrives, so a driver killed
mid-generation keeps every member that finished.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from jetsynth.errors import JetsynthError
from jetsynth.nn.dataset import Dataset
from jetsynth.run.config import EvolveConfig
from jetsynth.run.member import MemberTask, train_member
from jetsynth.run.train import TrainResult

StepHook = Callable[[int, int], None]


class Executor(Protocol):
    def train(self, tasks: Iterable[MemberTask], on_step: StepHook
              ) -> Iterator[tuple[MemberTask, TrainResult]]:
        """Train every task; yield each with its result as soon as it is done. `on_step(done,
        total)` reports optimiser steps where the executor can see them."""

    def close(self) -> None:
        """Stop whatever is still running and let go of what the executor started."""


class LocalExecutor:
    """One member at a time in this process, checkpointing finished epochs into the run
    directory (a killed run resumes the member being trained from its last epoch)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def train(self, tasks: Iterable[MemberTask], on_step: StepHook
              ) -> Iterator[tuple[MemberTask, TrainResult]]:
        for task in tasks:
            yield task, train_member(task, self.dataset, on_step)

    def close(self) -> None:
        pass


def open_executor(config: EvolveConfig, dataset: Dataset) -> Executor:
    """The executor --executor names, connected and ready (a Ray cluster that cannot be reached,
    or Ray not installed, ends here with one line, before the run directory is touched)."""
    if config.executor == "ray":
        try:
            from jetsynth.run.ray_executor import RayExecutor
        except ImportError as exc:
            if (exc.name or "").split(".")[0] != "ray":
                raise
            raise JetsynthError("--executor ray needs Ray, which is not installed here: "
                                "pip install 'jetsynth[ray]' (or use --executor local)") from None
        return RayExecutor(dataset, config.ray_address, config.cpus_per_member,
                           config.gpus_per_member)
    return LocalExecutor(dataset)
