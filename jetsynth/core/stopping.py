"""When a shrinking run has nothing left to gain: the stop rule of `--patience`.

A generation *improves* when one of its members keeps the accuracy floor (on validation) and is
smaller than every earlier member that kept it (fewer synapses or fewer multiply-accumulates) or,
where speed is measured, faster. The run ends once `--patience` generations in a row improved
nothing. Everything is computed from the members' records, so a resumed run decides as an
uninterrupted one would.
"""

from __future__ import annotations

import math

from jetsynth.core.records import MemberRecord
from jetsynth.core.selection import selection_accuracy


def stale_generations(records: list[MemberRecord], floor: float) -> int:
    """How many generations in a row, counted back from the last one, improved nothing at
    `floor` (the ancestor, generation 1, sets the first bests)."""
    best = {"synapses": math.inf, "macs": math.inf, "fps": 0.0}
    stale = 0
    for generation in sorted({r.generation for r in records}):
        kept = [r for r in records if r.generation == generation and selection_accuracy(r) >= floor]
        improved = False
        for record in kept:
            for key in ("synapses", "macs"):
                if getattr(record, key) < best[key]:
                    best[key], improved = getattr(record, key), True
            if (record.fps or 0.0) > best["fps"]:
                best["fps"], improved = record.fps, True
        stale = 0 if improved else stale + 1
    return stale
