"""The command line's numbers, checked in one place: every numeric option is finite (no NaN, no
infinity) and within bounds that make sense for it, so that a nonsense value ends with one line
naming the option instead of a traceback, a hang or a silent misreading later on."""

from __future__ import annotations

import math

import click


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

    def bounds(self) -> str:
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
    text = text.strip()
    if kind is int:
        return int(text)
    return float(text)


def _show(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def _name(param: click.Parameter | None) -> str:
    if param is None:
        return "the value"
    if isinstance(param, click.Option) and param.opts:
        return max(param.opts, key=len)
    return (param.name or "the value").upper()


MAX_BATCH = 4096
"""The most images one timed query may hold: far beyond any batch a Jetson runs, small enough that
the input tensor of a 224×224 colour network (about 2.5 GB in fp32) is still allocated."""
MAX_COUNT = 1_000_000
"""A ceiling for counts (generations, epochs, members, queries) that no sane run reaches and that
keeps loops and allocations finite."""
MAX_SECONDS = 7 * 24 * 3600.0
"""A week: the longest any timing or timeout may be asked to run."""
MAX_THREADS = 1024

COUNT = Number(int, 1, MAX_COUNT)
"""At least one of something: generations, population, parents, queries."""
EPOCHS = Number(int, 0, MAX_COUNT)
BATCH = Number(int, 1, MAX_BATCH)
TRAIN_BATCH = Number(int, 1, 1 << 20)
SEED = Number(int, 0, 2**32 - 1)
"""numpy's and torch's seeds are unsigned 32-bit integers."""
THREADS = Number(int, 0, MAX_THREADS)
"""CPU threads; 0 leaves the choice to the backend."""
SECONDS = Number(float, 0, MAX_SECONDS, low_open=True)
"""A positive, finite duration in seconds."""
WARMUP = Number(float, 0, MAX_SECONDS)
FRACTION = Number(float, 0, 1)
"""A share in [0, 1]."""
POSITIVE = Number(float, 0, low_open=True)
NON_NEGATIVE = Number(float, 0)
PORT = Number(int, 1, 65535)
MIB = Number(int, 1, 1 << 20)
"""Mebibytes of memory (workspace, free space): at least one, at most a tebibyte."""
IMAGE_SIZE = Number(int, 1, 4096)
