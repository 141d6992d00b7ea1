"""Who mates with whom: parent-selection policies over the previous generation.

Every policy that compares accuracies compares `selection_accuracy`: validation accuracy, never
the test accuracy the run reports.

- `random` (seeds 000/002): m parents drawn uniformly without replacement;
- `fitness`: each parent won by a tournament of `tournament` candidates on fitness =
  accuracy + weight · log2(synaptic efficiency) (so, by default, halving the synapses is worth
  one point of accuracy);
- `fps` (the closed loop): tournaments on speed among members that keep the accuracy floor;
  a member below the floor loses to any member above it, and among themselves such members
  compete on accuracy (speed: measured FPS, else the latency model's prediction); members whose
  measured speeds tie within their spreads (`trials.ties`) compete on accuracy;
- `similarity`: the first parent by tournament, the mates among those whose cluster overlap with
  it lies in [low, high] (closest to the band when too few do), which keeps mates compatible
  without making them clones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from jetsynth.core.records import MemberRecord
from jetsynth.core.trials import interval, ties
from jetsynth.errors import JetsynthError

POLICIES = ("random", "fitness", "fps", "similarity")


@dataclass(frozen=True)
class SelectionConfig:
    policy: str = "random"
    tournament: int = 3
    efficiency_weight: float = 0.01
    band: tuple[float, float] = (0.5, 0.9)
    floor: float = 0.0


def selection_accuracy(record: MemberRecord) -> float:
    """The accuracy that chooses (parents, pressure, floors, the target, the best member):
    the validation accuracy. Records without one (written before the validation split existed,
    or by a run with --val-split 0) fall back to their test `accuracy`."""
    value = record.val_accuracy
    return record.accuracy if value is None else value


def speed(record: MemberRecord) -> float | None:
    """A member's images per second: measured, else predicted, else None."""
    return record.fps or record.fps_predicted


def fps_score(record: MemberRecord, floor: float) -> tuple[int, float]:
    """(1, speed) for a member at or above the accuracy floor, (0, accuracy) below it (validation
    accuracy, see `selection_accuracy`): compared as tuples, any member that keeps the floor
    beats any that does not."""
    accuracy = selection_accuracy(record)
    if accuracy >= floor:
        return 1, float(speed(record) or 0.0)
    return 0, accuracy


def fitness(record: MemberRecord, efficiency_weight: float) -> float:
    efficiency = math.log2(max(record.synaptic_efficiency, 1e-12))
    return selection_accuracy(record) + efficiency_weight * efficiency


def _pick(count: int, pool: list[int], generator: torch.Generator) -> list[int]:
    order = torch.randperm(len(pool), generator=generator)[:count]
    return [pool[int(i)] for i in order]


def _tournament(pool: list[int], scores: list, size: int, generator: torch.Generator,
                records: list[MemberRecord] | None = None) -> int:
    """The entrant with the best score; with `records` (the fps policy), a winner at the floor
    shares the win with the entrants at the floor whose speed ties with it, and the one of best
    validation accuracy among them wins."""
    entrants = _pick(min(size, len(pool)), pool, generator)
    winner = max(entrants, key=lambda i: scores[i])
    if records is None or scores[winner][0] != 1:
        return winner
    tied = [i for i in entrants if scores[i][0] == 1 and (i == winner or ties(records[i], records[winner]))]
    return max(tied, key=lambda i: (selection_accuracy(records[i]), scores[i][1]))


def select_parents(
    records: list[MemberRecord],
    m: int,
    config: SelectionConfig,
    generator: torch.Generator,
    overlaps: np.ndarray | None = None,
) -> list[int]:
    """Indices into `records` of min(m, len(records)) distinct parents; the first is the
    reference parent (whose coordinates position alignment uses)."""
    m = min(m, len(records))
    pool = list(range(len(records)))
    if config.policy == "random":
        return _pick(m, pool, generator)
    if config.policy == "fps":
        scores = [fps_score(r, config.floor) for r in records]
    else:
        scores = [fitness(r, config.efficiency_weight) for r in records]
    by_speed = records if config.policy == "fps" else None
    first = _tournament(pool, scores, config.tournament, generator, by_speed)
    chosen = [first]
    pool.remove(first)
    if config.policy in ("fitness", "fps"):
        while len(chosen) < m:
            winner = _tournament(pool, scores, config.tournament, generator, by_speed)
            chosen.append(winner)
            pool.remove(winner)
        return chosen
    low, high = config.band
    in_band = [i for i in pool if low <= overlaps[first, i] <= high]
    mates = _pick(min(m - 1, len(in_band)), in_band, generator)
    rest = sorted((i for i in pool if i not in mates),
                  key=lambda i: min(abs(overlaps[first, i] - low), abs(overlaps[first, i] - high)))
    return chosen + mates + rest[: m - 1 - len(mates)]


def pick_member(records: list[MemberRecord], generation: int | None = None, member: int | None = None,
                max_drop: float = 0.01, floor: float | None = None) -> MemberRecord:
    """One member's record: the given generation/member (the ancestor is generation 1, member 0),
    or by default the deployment pick: among members within `max_drop` (a fraction: 0.01 = one
    point) of the ancestor's validation accuracy (`selection_accuracy`), or at least `floor`
    where given, the fastest (highest measured fps where every candidate has one, else fewest
    multiply-accumulates, then fewest synapses, then the best on validation)."""
    if generation is not None or member is not None:
        generation = 1 if generation is None else generation
        member = 0 if member is None else member
        for record in records:
            if record.generation == generation and record.member == member:
                return record
        raise JetsynthError(
            f"no finished member {member} in generation {generation}; see `jetsynth report`"
        )
    floor = selection_accuracy(records[0]) - max_drop if floor is None else floor
    return best_member(records, floor)[0]


def _fps_words(record: MemberRecord) -> str:
    low, high = interval(record)
    spread = f" (interquartile range {low:,.0f}–{high:,.0f})" if high > low else ""
    return f"{record.fps:,.0f} images/s{spread}"


def best_member(records: list[MemberRecord], floor: float) -> tuple[MemberRecord, str]:
    """The deployment pick among the members whose validation accuracy keeps `floor` (the
    ancestor when none does), and why, in words: the fastest by measured fps among the
    candidates that were measured, whenever any was (a prediction never outranks a measurement;
    with --measure-every the rest were only predicted) — members whose speed ties with the
    fastest's within their spreads (`trials.ties`) are a tie, broken by validation accuracy —
    else, in a run that timed nothing, the fewest multiply-accumulates, then the fewest
    synapses, then the best on validation."""
    candidates = [r for r in records if selection_accuracy(r) >= floor]
    if not candidates:
        return records[0], f"no member keeps the floor {floor:.4f}: the ancestor"
    measured = [r for r in candidates if r.fps]
    if measured and len(measured) < len(candidates):
        chosen, why = best_member(measured, floor)
        return chosen, (f"{why} (of the {len(measured)} of {len(candidates)} members at the floor "
                        "that were timed; the others' speed was only predicted)")
    if all(r.fps for r in candidates):
        fastest = max(candidates, key=lambda r: (r.fps, -r.generation))
        tied = [r for r in candidates if ties(r, fastest)]
        chosen = max(tied, key=lambda r: (selection_accuracy(r), r.fps, -r.generation))
        accuracy = f"validation accuracy {selection_accuracy(chosen):.4f} >= floor {floor:.4f}"
        if len(tied) == 1:
            return chosen, (f"the fastest of {len(candidates)} members at the floor: "
                            f"{_fps_words(chosen)}, {accuracy}")
        others = ", ".join(f"{r.id} {_fps_words(r)} at {selection_accuracy(r):.4f}"
                           for r in tied if r is not chosen)
        return chosen, (f"{len(tied)} members tie on speed within their spreads ({chosen.id} "
                        f"{_fps_words(chosen)}; {others}): the tie goes to the best validation "
                        f"accuracy, {selection_accuracy(chosen):.4f} (floor {floor:.4f})")
    chosen = min(candidates, key=lambda r: (r.macs, r.synapses, -selection_accuracy(r)))
    return chosen, (f"not every member was timed, so the fewest multiply-accumulates of "
                    f"{len(candidates)} members at the floor: {chosen.macs:,} MACs, validation "
                    f"accuracy {selection_accuracy(chosen):.4f} >= floor {floor:.4f}")
