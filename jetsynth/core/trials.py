"""Speed figures that state their spread: repeated timing trials, their median and interquartile
range, more trials when the first ones disagree, and the rule that two speeds whose ranges
overlap are a tie.

A shared host (other processes, frequency scaling, a noisy neighbour) moves a single timing by
tens of percent, which is more than the differences evolution selects on. The median of several
short trials ignores a trial that a burst of load slowed; the interquartile range says how much
the figure can be trusted; and where the range is wide, more trials are run (up to a limit)
before the figure is accepted. Units: images per second throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from jetsynth.core.records import MemberRecord

TRIALS = 5
"""Trials per figure: enough for a median that ignores two bad trials."""
MAX_TRIALS = 11
"""Re-timing stops here, whatever the spread."""
AGREEMENT = 0.10
"""Trials agree when their interquartile range is at most this fraction of their median."""
DRIFT_TOLERANCE = 0.15
"""A reference network re-timed this far (as a fraction) from its first timing means the host's
speed changed between members."""


@dataclass(frozen=True)
class Spread:
    """The median of the trials and their interquartile range (first and third quartile, linear
    interpolation as numpy's default)."""

    median: float
    q1: float
    q3: float
    trials: tuple[float, ...]

    @property
    def relative(self) -> float:
        """Interquartile range over the median (0 for a single trial)."""
        return (self.q3 - self.q1) / self.median if self.median else 0.0

    def agrees(self, tolerance: float = AGREEMENT) -> bool:
        return self.relative <= tolerance


def spread(trials: list[float] | tuple[float, ...]) -> Spread:
    if not trials:
        raise ValueError("no trials")
    values = np.asarray(trials, dtype=float)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return Spread(float(median), float(q1), float(q3), tuple(float(v) for v in trials))


def run_trials(trial: Callable[[], float], trials: int = TRIALS, max_trials: int = MAX_TRIALS,
               tolerance: float = AGREEMENT) -> tuple[Spread, int]:
    """Call `trial()` (one timing, images/s) `trials` times; while the trials disagree (see
    `Spread.agrees`) run two more, up to `max_trials`. Returns the spread and how many trials
    were added by re-timing."""
    values = [trial() for _ in range(max(1, trials))]
    result = spread(values)
    while not result.agrees(tolerance) and len(values) < max_trials:
        values += [trial() for _ in range(min(2, max_trials - len(values)))]
        result = spread(values)
    return result, len(values) - max(1, trials)


def interval(record: MemberRecord) -> tuple[float, float] | None:
    """A member's measured speed range (q1, q3) in images/s: its `fps_iqr`, a point at its `fps`
    when it was measured before spreads were recorded, None when it was not measured."""
    fps = record.fps
    if not fps:
        return None
    iqr = record.fps_iqr
    if isinstance(iqr, (list, tuple)) and len(iqr) == 2:
        return float(iqr[0]), float(iqr[1])
    return float(fps), float(fps)


def ties(a: MemberRecord, b: MemberRecord) -> bool:
    """Whether two measured members are equally fast within their spreads (their interquartile
    ranges overlap)."""
    first, second = interval(a), interval(b)
    if first is None or second is None:
        return False
    return first[0] <= second[1] and second[0] <= first[1]


def drift(reference_now: float, reference_first: float) -> float:
    """How the host's speed changed since the run's first timing: the reference network's
    images/s now over then (1.0: unchanged; 0.5: the host runs at half speed)."""
    return reference_now / reference_first
