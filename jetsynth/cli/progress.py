"""What a person sees while a command works: live bars on a terminal, and plain one-line progress
records, never wrapped, when the output goes to a file or a pipe (`| tee`, `nohup`), where bars
would only appear at the end and an 80-column console would break every line."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from jetsynth.core.records import MemberRecord

PLAIN_WIDTH = 1000
"""Columns a console writing to a file or pipe pretends to have: wide enough that no line wraps."""
PLAIN_EVERY_SECONDS = 10.0
"""The least time between two plain progress records of one task (first and last always print)."""


def is_terminal(stderr: bool = False) -> bool:
    stream = sys.stderr if stderr else sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def make_console(stderr: bool = False):
    """A rich console: the terminal's width on a terminal, else one that never wraps."""
    from rich.console import Console

    if is_terminal(stderr):
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PLAIN_WIDTH, no_color=True, highlight=False)


def clock(seconds: float | None) -> str:
    """Seconds as H:MM:SS; '?' when not known."""
    if seconds is None:
        return "?"
    seconds = max(int(round(seconds)), 0)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class MemberClock:
    """The members' ETA: the mean time of the members trained in this process times those left.
    The ancestor trains longer than an offspring (more epochs), so once an offspring is done the
    ancestor no longer counts."""

    def __init__(self, now: Callable[[], float] = time.monotonic):
        self.now = now
        self.durations: list[tuple[str, float]] = []
        self.started_at: float | None = None

    def member_started(self) -> None:
        self.started_at = self.now()

    def member_finished(self, member_id: str) -> None:
        if self.started_at is not None:
            self.durations.append((member_id, self.now() - self.started_at))
            self.started_at = None

    def eta(self, remaining: int) -> float | None:
        """Seconds until `remaining` more members are done; None before any member finished."""
        offspring = [s for mid, s in self.durations if not mid.startswith("g01-")]
        sample = offspring or [s for _, s in self.durations]
        if not sample:
            return None
        return remaining * sum(sample) / len(sample)


def member_line(record: MemberRecord) -> str:
    """One finished member in one line: accuracy, size, efficiencies, time and speed."""
    val = record.val_accuracy
    line = (f"{record.id}: accuracy {record.accuracy:.4f}"
            + (f" (validation {val:.4f}), " if val is not None else ", ")
            + f"{record.synapses:,} synapses ({record.synaptic_efficiency:.2f}×), "
            f"{record.clusters:,} clusters ({record.cluster_efficiency:.2f}×), "
            f"{record.train_seconds or 0.0:.1f} s")
    if record.fps:
        iqr = record.fps_iqr
        spread = f" (interquartile range {iqr[0]:,.0f}–{iqr[1]:,.0f})" if iqr else ""
        line += f", {record.fps:,.0f} FPS{spread}"
    elif record.fps_predicted:
        line += f", ~{record.fps_predicted:,.0f} FPS predicted"
    return line


def resuming_line(done: int, total: int) -> str | None:
    return f"resuming: {done} of {total} members done" if done else None


def bars(console):
    """rich's live bars as every progress display here shows them: description, bar, done of
    total, elapsed, remaining."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


class RichObserver:
    """Live bars on a terminal: one for the run's members (with ETA), one for each member in
    training (with --executor ray, every member in flight; steps are counted for the one trained
    in this process)."""

    def __init__(self, console):
        self.console = console
        self.progress = bars(console)
        self.clock = MemberClock()
        self.run_task = None
        self.member_tasks: dict[str, int] = {}
        self.latest = None
        self.total = 0

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def run_started(self, run_dir, done, total):
        self.console.print(f"run directory: {run_dir}")
        if resuming_line(done, total):
            self.console.print(resuming_line(done, total))
        self.total = total
        self.run_task = self.progress.add_task("members", total=total, completed=done)

    def member_started(self, member_id):
        self.clock.member_started()
        self.latest = self.progress.add_task(f"training {member_id}", total=None)
        self.member_tasks[member_id] = self.latest

    def step(self, done, total):
        self.progress.update(self.latest, completed=done, total=total)

    def member_timing(self, member_id):
        if member_id in self.member_tasks:
            self.progress.update(self.member_tasks[member_id], description=f"timing {member_id}")

    def notice(self, text):
        self.progress.console.print(text)

    def member_finished(self, record: MemberRecord):
        self.clock.member_finished(record.id)
        self.progress.advance(self.run_task)
        if record.id in self.member_tasks:
            self.progress.remove_task(self.member_tasks.pop(record.id))
        completed = int(next(t.completed for t in self.progress.tasks if t.id == self.run_task))
        eta = self.clock.eta(self.total - completed)
        self.progress.update(self.run_task, description=f"members (eta {clock(eta)})")
        self.progress.console.print(member_line(record))


class PlainObserver:
    """One line per event, for a file or a pipe: 'members 2/5, elapsed 0:01:10, eta 0:01:45'
    after each member, and a training record at most every PLAIN_EVERY_SECONDS."""

    def __init__(self, echo: Callable[[str], None], now: Callable[[], float] = time.monotonic,
                 every: float = PLAIN_EVERY_SECONDS):
        self.echo = echo
        self.now = now
        self.every = every
        self.clock = MemberClock(now)
        self.done = self.total = 0
        self.started = now()
        self.label = ""
        self.last_step = -float("inf")
        self.member_started_at = self.started

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def run_started(self, run_dir, done, total):
        self.done, self.total = done, total
        self.started = self.now()
        self.echo(f"run directory: {run_dir}")
        if resuming_line(done, total):
            self.echo(resuming_line(done, total))

    def member_started(self, member_id):
        self.clock.member_started()
        self.label = f"training {member_id}"
        self.member_started_at = self.now()
        self.last_step = -float("inf")

    def step(self, done, total):
        now = self.now()
        if done != total and now - self.last_step < self.every:
            return
        self.last_step = now
        elapsed = now - self.member_started_at
        eta = elapsed * (total - done) / done if done else None
        self.echo(f"{self.label}: step {done}/{total} ({100 * done / max(total, 1):.0f} %), "
                  f"elapsed {clock(elapsed)}, eta {clock(eta)}")

    def notice(self, text):
        self.echo(text)

    def member_timing(self, member_id):
        pass

    def member_finished(self, record: MemberRecord):
        self.clock.member_finished(record.id)
        self.done += 1
        self.echo(member_line(record))
        self.echo(f"members {self.done}/{self.total}, elapsed {clock(self.now() - self.started)}, "
                  f"eta {clock(self.clock.eta(self.total - self.done))}")


def run_observer():
    """The evolution's progress display on stderr: bars on a terminal, else plain lines."""
    if is_terminal(stderr=True):
        return RichObserver(make_console(stderr=True))
    import click

    return PlainObserver(lambda line: click.echo(line, err=True))


class StepProgress:
    """Progress of one long step (a fine-tuning) as `on_step(done, total)`: a bar on a terminal,
    plain records otherwise."""

    def __init__(self, description: str, active: bool = True):
        self.description = description
        self.active = active
        self.progress = None
        self.task = None
        self.plain = None

    def __enter__(self):
        if not self.active:
            return self
        if is_terminal(stderr=True):
            self.progress = bars(make_console(stderr=True))
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=None)
        else:
            import click

            self.plain = PlainObserver(lambda line: click.echo(line, err=True))
            self.plain.member_started("")
            self.plain.label = self.description
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=total)
        elif self.plain is not None:
            self.plain.step(done, total)
