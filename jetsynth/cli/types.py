"""The command line's numbers, checked in one place: every numeric option is finite (no NaN, no
infinity) and within bounds that make sense for it, so that a nonsense value ends with one line
naming the option instead of a traceback, a hang or a silent misreading later on."""

from __future__ import annotations

import math

import click

from jetsynth.run import bounds
from jetsynth.run.bounds import MAX_SECONDS, Bounds


class BadNumber(click.BadParameter):
    """A number outside its option's bounds; formats as the one line itself (names the option)."""

    def format_message(self) -> str:
        return self.message


class Number(click.ParamType):
    """A finite int or float in [low, high] (either end open when `*_open`; None: unbounded).
    Reused by every numeric option: `Number(int, 1)` for counts, `Number(float, 0, 1, low_open=True)`
    for a fraction in (0, 1]."""

    def __init__(self, kind: type = float, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False):
        self.kind = kind
        self.low, self.high = low, high
        self.low_open, self.high_open = low_open, high_open
        self.name = "integer" if kind is int else "number"

    @classmethod
    def within(cls, accepted: Bounds) -> Number:
        """The click type of the numbers `accepted` allows (the command line's side of
        `run/bounds.py`)."""
        return cls(accepted.kind, accepted.low, accepted.high, accepted.low_open, accepted.high_open)

    def bounds(self) -> str:
        """The accepted range in words: '>= 1', '> 0', 'in [0, 1)', '' when unbounded."""
        return Bounds(self.kind, self.low, self.high, self.low_open, self.high_open).words()

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "INTEGER" if self.kind is int else "NUMBER"

    def convert(self, value, param, ctx):
        name = _name(param)
        wanted = f"{'an integer' if self.kind is int else 'a finite number'}"
        if self.bounds():
            wanted += f" {self.bounds()}"
        try:
            number = self.kind(value) if not isinstance(value, str) else _parse(value, self.kind)
        except (TypeError, ValueError, OverflowError):
            raise BadNumber(f"{name} must be {wanted}, got {value!r}", ctx, param) from None
        outside = (
            not math.isfinite(number)
            or (self.low is not None and (number < self.low or (self.low_open and number == self.low)))
            or (self.high is not None and (number > self.high
                                           or (self.high_open and number == self.high)))
        )
        if outside:
            raise BadNumber(f"{name} must be {wanted}, got {value!r}", ctx, param)
        return number

    def __repr__(self) -> str:
        return f"Number({self.kind.__name__}, {self.bounds() or 'any'})"


def _parse(text: str, kind: type) -> float:
    """`text` as a number of `kind`; ASCII only: Python's int() and float() also read other
    scripts' digits ('٢' is 2), which no option means."""
    text = text.strip()
    if not text.isascii():
        raise ValueError(f"not an ASCII number: {text!r}")
    if kind is int:
        return int(text)
    return float(text)



def _name(param: click.Parameter | None) -> str:
    if param is None:
        return "the value"
    if isinstance(param, click.Option) and param.opts:
        return max(param.opts, key=len)
    return (param.name or "the value").upper()


COUNT = Number.within(bounds.COUNT)
EPOCHS = Number.within(bounds.EPOCHS)
BATCH = Number.within(bounds.BATCH)
TRAIN_BATCH = Number.within(bounds.TRAIN_BATCH)
SEED = Number.within(bounds.SEED)
THREADS = Number.within(bounds.THREADS)
SECONDS = Number.within(bounds.SECONDS)
WARMUP = Number(float, 0, MAX_SECONDS)
FRACTION = Number.within(bounds.FRACTION)
POSITIVE = Number.within(bounds.POSITIVE)
NON_NEGATIVE = Number.within(bounds.NON_NEGATIVE)
PORT = Number(int, 1, 65535)
MIB = Number(int, 1, 1 << 20)
"""Mebibytes of memory (workspace, free space): at least one, at most a tebibyte."""
IMAGE_SIZE = Number.within(bounds.IMAGE_SIZE)
TRIALS = Number.within(bounds.TRIALS)
STEPS = Number.within(bounds.STEPS)
MEMBERS = Number.within(bounds.MEMBERS)
LEARNING_RATE = Number.within(bounds.LEARNING_RATE)
