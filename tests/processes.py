"""Which processes a test session leaves running: its own descendants, and any process whose
command line names the session's temporary folder (a backgrounded `ssh -M -f` master leaves
the process tree but names its control socket there; a device agent names its work folder)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str
    cmdline: str


def processes() -> dict[int, Proc]:
    """Every readable process on this machine, by pid (from /proc; zombies included)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(entry.name)] = Proc(int(entry.name), int(fields[1]), fields[0], cmdline.strip())
    return found


def descendants(table: dict[int, Proc], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def ours(table: dict[int, Proc], root: int, markers: tuple[str, ...]) -> set[int]:
    """Live (non-zombie) descendants of `root`, and processes whose command line holds one of
    `markers`."""
    pids = descendants(table, root) | {p.pid for p in table.values()
                                       if any(m and m in p.cmdline for m in markers)}
    pids.discard(os.getpid())
    return {pid for pid in pids if table[pid].state != "Z"}


def leaked(before: set[int], root: int, markers: tuple[str, ...], grace_seconds: float = 5.0) -> list[Proc]:
    """The processes of ours that were not running in `before` and still run after a grace
    period (a process that is ending is given time to end)."""
    deadline = time.monotonic() + grace_seconds
    while True:
        table = processes()
        left = [table[pid] for pid in sorted(ours(table, root, markers) - before)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)
