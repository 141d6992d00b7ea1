"""The accepted range of each kind of number the command line takes, as plain data: the run layer
names the range of every evolve option (`run/options.py`) and the command line turns each range
into its checked click type (`cli/types.py`), so a bound is written once."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bounds:
    """Finite numbers of `kind` (int or float) in [low, high]; an end is open when `*_open`, and
    absent (unbounded) when None."""

    kind: type = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def words(self) -> str:
        """The accepted range in words: '>= 1', '> 0', 'in [0, 1)', '' when unbounded."""
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            return f"in {left}{_show(self.low)}, {_show(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_show(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_show(self.high)}"
        return ""

    def wanted(self) -> str:
        """What a value must be: 'an integer in [1, 1000000]', 'a finite number > 0'."""
        kind = "an integer" if self.kind is int else "a finite number"
        return f"{kind} {self.words()}".rstrip()

    def contains(self, value: object) -> bool:
        """Whether `value` is a finite number of this kind (an int passes as a float) in range."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below


def _show(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


MAX_BATCH = 4096
"""The most images one timed query may hold: far beyond any batch a Jetson runs, small enough that
the input tensor of a 224×224 colour network (about 2.5 GB in fp32) is still allocated."""
MAX_COUNT = 1_000_000
"""A ceiling for counts (generations, epochs, members, queries) that no sane run reaches and that
keeps loops and allocations finite."""
MAX_SECONDS = 7 * 24 * 3600.0
"""A week: the longest any timing or timeout may be asked to run."""
MAX_THREADS = 1024
DAY = 24 * 3600.0
"""The longest a command may be asked to spend timing (seconds): past it, the options are
refused as a slip rather than run for days."""
MAX_TRIALS = 1000
"""The most timing trials one measurement may run (the median of 5 is the default)."""
MAX_STEPS = 10_000_000
"""The most training updates `grow` may make in all (--initial-steps + --iterations × --steps)."""
MAX_MEMBERS = 1000
"""The most networks `grow` holds at once (--population)."""
MAX_ALPHA = 1e6
"""The largest mating weight: weights are relative (an offspring's weight is their weighted
mean), and larger ones overflow fp32 in the mean."""

COUNT = Bounds(int, 1, MAX_COUNT)
"""At least one of something: generations, population, parents, queries."""
EPOCHS = Bounds(int, 0, MAX_COUNT)
BATCH = Bounds(int, 1, MAX_BATCH)
TRAIN_BATCH = Bounds(int, 1, 1 << 20)
SEED = Bounds(int, 0, 2**32 - 1)
"""numpy's and torch's seeds are unsigned 32-bit integers."""
THREADS = Bounds(int, 0, MAX_THREADS)
"""CPU threads; 0 leaves the choice to the backend."""
SECONDS = Bounds(float, 0, MAX_SECONDS, low_open=True)
"""A positive, finite duration in seconds."""
FRACTION = Bounds(float, 0, 1)
"""A share in [0, 1]."""
POSITIVE = Bounds(float, 0, low_open=True)
NON_NEGATIVE = Bounds(float, 0)
IMAGE_SIZE = Bounds(int, 1, 4096)
"""Pixels along a side of a square image."""
TRIALS = Bounds(int, 1, MAX_TRIALS)
STEPS = Bounds(int, 1, MAX_STEPS)
MEMBERS = Bounds(int, 1, MAX_MEMBERS)
LEARNING_RATE = Bounds(float, 0, 10, low_open=True)
CPUS = Bounds(int, 1, MAX_THREADS)
ALPHA = Bounds(float, 0, MAX_ALPHA)
SUBSET = Bounds(float, 0, 1, low_open=True)
