"""The timing rules shared by `jetsynth bench` on the host and the agent on a device.

An untimed warm-up, then queries until both a minimum duration and a minimum count are reached;
throughput is queries over the wall time of the timed loop, FPS = throughput x batch, latency
percentiles are nearest-rank over the per-query latencies, in milliseconds (trtexec's
definitions)."""

import math
import time

from .errors import AgentError


def nearest_rank(sorted_values, percent):
    """The nearest-rank percentile: the smallest value with at least `percent` % of the values at
    or below it."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, int(math.ceil(percent / 100.0 * len(sorted_values))))
    return sorted_values[rank - 1]


def time_queries(infer, warmup_seconds, min_seconds, min_queries):
    """Run `infer()` (one blocking query) for an untimed warm-up, then until `min_seconds` and
    `min_queries` are both reached. Returns (per-query latencies in ms, loop wall time in s).
    A NaN or infinite duration would never be reached: refused rather than looped on forever."""
    if not all(math.isfinite(v) and v >= 0 for v in (warmup_seconds, min_seconds, min_queries)):
        raise AgentError("timing durations and query counts must be finite and not negative, got "
                         f"warm-up {warmup_seconds}, duration {min_seconds}, queries {min_queries}")
    started = time.perf_counter()
    infer()
    while time.perf_counter() - started < warmup_seconds:
        infer()
    latencies = []
    loop_start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        infer()
        t1 = time.perf_counter()
        latencies.append((t1 - t0) * 1000.0)
        if t1 - loop_start >= min_seconds and len(latencies) >= min_queries:
            break
    return latencies, time.perf_counter() - loop_start


def summarize(latencies_ms, wall_seconds, batch):
    """trtexec's figures from one timed loop: queries/s, images/s, latency statistics in ms."""
    ordered = sorted(latencies_ms)
    qps = len(ordered) / wall_seconds
    return {
        "queries": len(ordered),
        "wall_seconds": round(wall_seconds, 4),
        "throughput_qps": qps,
        "fps": qps * batch,
        "latency_ms": {
            "mean": sum(ordered) / len(ordered),
            "min": ordered[0],
            "p50": nearest_rank(ordered, 50),
            "p90": nearest_rank(ordered, 90),
            "p99": nearest_rank(ordered, 99),
            "max": ordered[-1],
        },
    }
