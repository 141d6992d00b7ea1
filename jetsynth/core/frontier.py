"""The FPS/accuracy frontier of a run: which members no other member beats on both speed and
accuracy, and, generation by generation, the fastest member that keeps the accuracy floor.

Speed is measured FPS where a member was timed and the latency model's prediction otherwise;
each row says which, so a reader can tell a promise from a measurement. Accuracy, wherever it
chooses (the front, the floor, the best of a generation), is `selection_accuracy` (validation);
the rows report the chosen members' test accuracy beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jetsynth.core.records import MemberRecord
from jetsynth.core.selection import selection_accuracy, speed


def pareto_front(records: list[MemberRecord], gain: Callable[[MemberRecord], float | None] = speed,
                 accuracy: Callable[[MemberRecord], float] = selection_accuracy) -> list[MemberRecord]:
    """Members with a `gain` (by default their speed, FPS) that no other member matches or beats
    on both `gain` and `accuracy` while beating it on one, ordered from the largest gain to the
    most accurate. Members without a gain are left out."""
    scored = [r for r in records if gain(r)]
    front = []
    for record in sorted(scored, key=lambda r: (-gain(r), -accuracy(r))):
        if not front or accuracy(record) > accuracy(front[-1]):
            front.append(record)
    return front


def meets_target(record: MemberRecord, target_fps: float | None, floor: float) -> bool:
    """Whether `record` reached `target_fps` by measurement (a prediction never counts) with
    validation accuracy at or above `floor`."""
    return (target_fps is not None and bool(record.fps) and record.fps >= target_fps
            and selection_accuracy(record) >= floor)


def source(record: MemberRecord) -> str:
    """'measured' when the member was timed, 'predicted' when only the model spoke, '-' else."""
    if record.fps:
        return "measured"
    return "predicted" if record.fps_predicted else "-"


@dataclass(frozen=True)
class FrontierRow:
    """One generation of the frontier (see `frontier_rows`): its `members` count, the test
    accuracy of its best member on validation (`best_accuracy`), its `fastest` member at the
    floor (None: none kept it) with that member's validation and test accuracy (fractions),
    measured `fps` and interquartile range `fps_iqr` (q1, q3, images/s), predicted FPS and
    `source`; `meets_target` whether any member reached the target by measurement at the floor;
    `front` the ids on the front of all members so far."""

    generation: int
    members: int
    best_accuracy: float
    fastest: str | None
    val_accuracy: float | None
    accuracy: float | None
    fps: float | None
    fps_iqr: tuple[float, float] | None
    fps_predicted: float | None
    source: str
    meets_target: bool
    front: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The row as `report --json` writes it (lists for the range and the front)."""
        return {"generation": self.generation, "members": self.members,
                "best_accuracy": self.best_accuracy, "fastest": self.fastest,
                "val_accuracy": self.val_accuracy, "accuracy": self.accuracy, "fps": self.fps,
                "fps_iqr": None if self.fps_iqr is None else list(self.fps_iqr),
                "fps_predicted": self.fps_predicted, "source": self.source,
                "meets_target": self.meets_target, "front": list(self.front)}


def frontier_rows(records: list[MemberRecord], floor: float,
                  target_fps: float | None = None) -> list[FrontierRow]:
    """Per generation: the test accuracy of its best member on validation, its fastest member
    whose validation accuracy keeps `floor` (by measured FPS among its timed members when it has
    any, else by prediction; speed, measured and predicted FPS, validation and test accuracy),
    whether any of its members reached `target_fps` by measurement at or above the floor,
    and the ids on the front of all members so far."""
    rows = []
    for generation in sorted({r.generation for r in records}):
        members = [r for r in records if r.generation == generation]
        kept = [r for r in members if selection_accuracy(r) >= floor and speed(r)]
        timed = [r for r in kept if r.fps]
        fastest = max(timed or kept, key=speed, default=None)
        rows.append(FrontierRow(
            generation=generation,
            members=len(members),
            best_accuracy=max(members, key=selection_accuracy).accuracy,
            fastest=fastest.id if fastest else None,
            val_accuracy=selection_accuracy(fastest) if fastest else None,
            accuracy=fastest.accuracy if fastest else None,
            fps=fastest.fps if fastest else None,
            fps_iqr=tuple(fastest.fps_iqr) if fastest and fastest.fps_iqr else None,
            fps_predicted=fastest.fps_predicted if fastest else None,
            source=source(fastest) if fastest else "-",
            meets_target=any(meets_target(r, target_fps, floor) for r in members),
            front=tuple(r.id for r in pareto_front([r for r in records if r.generation <= generation])),
        ))
    return rows
