"""Which of K drawn offspring to train (--screen K).

Draws differ in size as well as in what they kept: the environmental factors fix the budget in
expectation only, and a draw that happened to keep more loses less of its parents' function. A
plain lowest-loss pick would therefore breed the largest draws and slow the compression; the pick
compares a draw's loss only with draws that cost no more than the median draw.
"""

from __future__ import annotations

import statistics


def pick_draw(losses: list[float], costs: list[float]) -> int:
    """The index of the draw with the lowest loss among those whose cost is at most the median
    cost of all draws (ties: the first). Losses in any unit where lower is better (nats per
    image); costs in the run's pressure unit (synapses, MACs or latency terms)."""
    if len(losses) != len(costs) or not losses:
        raise ValueError("one loss and one cost per draw, at least one draw")
    median = statistics.median(costs)
    eligible = [i for i, cost in enumerate(costs) if cost <= median]
    return min(eligible, key=lambda i: (losses[i], i))
