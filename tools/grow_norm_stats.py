"""How much a `jetsynth grow` population loses by evaluating its members with the batch-norm
running statistics they share, printed as JSON: for every member of the run's last finished
iteration (RUN/population), validation accuracy with the shared statistics (as they were after
the last update) and with statistics of its own (`nn.norm_stats`, re-estimated on
`run.grow.CALIBRATION_BATCHES` training batches, as `grow` now evaluates).

    OMP_NUM_THREADS=1 python tools/grow_norm_stats.py RUN_DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, mean_spread  # noqa: E402

from jetsynth.data.load import load_dataset  # noqa: E402
from jetsynth.nn.growth import split_arch  # noqa: E402
from jetsynth.nn.models import resolve_factory  # noqa: E402
from jetsynth.nn.norm_stats import with_own_statistics  # noqa: E402
from jetsynth.nn.population import SharedPopulation  # noqa: E402
from jetsynth.run.grow import (  # noqa: E402
    POPULATION_DIR,
    STATE,
    TENSORS,
    GrowConfig,
    calibration_batches,
    predictions,
)
from jetsynth.run.rundir import GROW_FILE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    torch.set_num_threads(1)
    config = GrowConfig(**json.loads((args.run_dir / GROW_FILE).read_text())["config"])
    dataset = load_dataset(config.evolve_config().data_spec())
    population = SharedPopulation(resolve_factory(split_arch(config.arch)[0], trusted=True),
                                  dataset.input_shape, dataset.classes)
    population.load(args.run_dir / POPULATION_DIR / TENSORS)
    state = json.loads((args.run_dir / POPULATION_DIR / STATE).read_text())

    def val_accuracy(model) -> float:
        return float((predictions(model, dataset.val_x) == dataset.val_y).float().mean())

    rows = []
    for member in state["members"]:
        model = population.build(member["arch"])
        own = with_own_statistics(model, calibration_batches(dataset, config.seed, config.batch_size))
        rows.append({"id": member["id"], "arch": member["arch"], "val_shared_statistics": val_accuracy(model),
                     "val_own_statistics": val_accuracy(own)})
    gains = [r["val_own_statistics"] - r["val_shared_statistics"] for r in rows]
    emit("grow_norm_stats", {"run_dir": str(args.run_dir), "iteration": state["iteration"],
                             "val_images": len(dataset.val_x), "members": rows,
                             "gain_with_own_statistics": mean_spread(gains)},
         time.perf_counter() - started)


if __name__ == "__main__":
    main()
