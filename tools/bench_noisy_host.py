"""The noisy-host timing experiment: the same two networks timed again and again while other
processes load the CPU in bursts, by the old rule (one 0.5 s trial) and the new one (the median
of 5 trials with their interquartile range, re-timed while they disagree, and the reference
network re-timed beside each for drift), as `evolve --bench ort` times members.

By default the two networks are one architecture (LeNet-5 on 1×28×28, two initialisations), so
their true speed ratio is 1: every departure of a reported ratio from 1 is noise, and a rule
that ranks one above the other is ranking noise. Give two ONNX files to time others. Prints
JSON: per rule and network the reported FPS over the repetitions (median, interquartile range,
min, max), the A/B ratios, how often the rule would rank them apart by more than 10 %, and for
the new rule how often it calls them a tie (overlapping interquartile ranges).

    OMP_NUM_THREADS=1 nice -n 10 python tools/bench_noisy_host.py --repeats 12 --load 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BURSTY = """
import time
while True:
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        sum(i * i for i in range(2000))
    time.sleep(0.3)
"""


def build_pair(folder: Path) -> tuple[Path, Path]:
    from jetsynth.core.genome import ancestor_genome, topology_for
    from jetsynth.nn.models import resolve_factory
    from jetsynth.ship.export import export_genome

    factory = resolve_factory("lenet5", True)
    topology = topology_for("lenet5", (1, 28, 28), 10, factory)
    paths = []
    for seed, name in ((0, "a.onnx"), (1, "b.onnx")):
        genome = ancestor_genome("lenet5", (1, 28, 28), 10, seed, topology)
        paths.append(export_genome(genome, folder / name, "fp32").path)
    return paths[0], paths[1]


def summary(values: list[float], digits: int = 1) -> dict:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"median": round(float(median), digits),
            "iqr": [round(float(q1), digits), round(float(q3), digits)],
            "min": round(min(values), digits), "max": round(max(values), digits),
            "relative_iqr": round(float((q3 - q1) / median), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, help="two ONNX files [default: two LeNet-5]")
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=0.5, help="as evolve --bench-seconds")
    parser.add_argument("--load", type=int, default=2, help="bursty busy processes meanwhile")
    args = parser.parse_args()

    from jetsynth.core.trials import ties
    from jetsynth.run.measurement import time_here
    from jetsynth.ship.bench import THREADS, measure, onnx_runner

    with tempfile.TemporaryDirectory() as scratch:
        a, b = args.models if len(args.models) == 2 else build_pair(Path(scratch))

        def old(path: Path) -> float:
            return measure(onnx_runner(path, "ort-cpu", THREADS), 1, warmup_seconds=0.1,
                           min_seconds=args.seconds, min_queries=10, trials=1).fps

        load = [subprocess.Popen([sys.executable, "-c", BURSTY]) for _ in range(args.load)]
        started = time.perf_counter()
        try:
            reference = (a, time_here(a, "ort-cpu", 1, args.seconds).fps)
            rows = []
            for _ in range(args.repeats):
                new_a = time_here(a, "ort-cpu", 1, args.seconds, reference)
                new_b = time_here(b, "ort-cpu", 1, args.seconds, reference)
                rows.append({"old": (old(a), old(b)), "new": (new_a, new_b)})
        finally:
            for process in load:
                process.kill()
                process.wait()
    old_ratios = [r["old"][0] / r["old"][1] for r in rows]
    new_ratios = [r["new"][0].fps / r["new"][1].fps for r in rows]

    def apart(ratios: list[float]) -> float:
        return round(sum(abs(x - 1) > 0.10 for x in ratios) / len(ratios), 3)

    print(json.dumps({
        "models": [str(a), str(b)] if len(args.models) == 2 else "two LeNet-5 (same architecture)",
        "repeats": args.repeats, "seconds": args.seconds, "bursty_load_processes": args.load,
        "cpus": os.cpu_count(), "loadavg_1min_after": round(os.getloadavg()[0], 2),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "old_single_trial": {
            "a_fps": summary([r["old"][0] for r in rows]), "b_fps": summary([r["old"][1] for r in rows]),
            "ratio_a_over_b": summary(old_ratios, 3), "ranked_apart_by_10pct": apart(old_ratios),
        },
        "new_trials_median_iqr": {
            "a_fps": summary([r["new"][0].fps for r in rows]),
            "b_fps": summary([r["new"][1].fps for r in rows]),
            "ratio_a_over_b": summary(new_ratios, 3), "ranked_apart_by_10pct": apart(new_ratios),
            "called_a_tie": round(sum(ties(r["new"][0], r["new"][1]) for r in rows) / len(rows), 3),
            "median_own_relative_iqr": round(float(np.median(
                [(t.fps_iqr[1] - t.fps_iqr[0]) / t.fps for r in rows for t in r["new"]])), 3),
            "retimed_trials": sum(t.retimed for r in rows for t in r["new"]),
            "drift": summary([t.drift for r in rows for t in r["new"]], 3),
            "drift_retimed": sum(t.drift_retimed for r in rows for t in r["new"]),
        },
    }, indent=2))


if __name__ == "__main__":
    main()
