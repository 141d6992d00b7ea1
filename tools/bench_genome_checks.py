"""What do the integrity checks cost when a genome is read? For each architecture, a member is
saved in a throw-away run directory and read `repeats` times three ways: the tensors alone
(safetensors' load_file, what reading cost before the checks), the genome through the run
directory (sha256 of genome.safetensors against member.json, lineage, then every name, shape,
dtype and finite value against the network), and the sha256 alone.

Reported per architecture: the genome file's size (MiB) and the median milliseconds of each way.

    python tools/bench_genome_checks.py [--arch lenet5 --arch resnet18] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import emit
from safetensors.torch import load_file

from jetsynth.core.genome import TENSORS_FILE, ancestor_genome
from jetsynth.core.records import MemberRecord
from jetsynth.run.rundir import RunDirectory
from jetsynth.storage import sha256_file

SHAPES = {"lenet5": ((1, 28, 28), 10), "alexnet-cifar": ((3, 32, 32), 10),
          "resnet18": ((3, 32, 32), 10), "mobilenet-v2": ((3, 32, 32), 10)}


def median_ms(read, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        read()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 2)


def measure(arch: str, repeats: int, folder: Path) -> dict:
    shape, classes = SHAPES[arch]
    genome = ancestor_genome(arch, shape, classes, seed=0)
    run = RunDirectory(folder / arch)
    record = {"id": "g01-m00", "generation": 1, "member": 0, "parents": [], "seed": 0,
              "accuracy": 0.5, "val_accuracy": None, "synapses": 1, "clusters": 1, "kernels": 1,
              "units": 1, "macs": 1, "synaptic_efficiency": 1.0, "cluster_efficiency": 1.0,
              "mac_reduction": 1.0, "layers": [{"name": "x", "synapses": 1, "clusters": 1}],
              "layer_cluster_efficiency": [1.0], "layer_synaptic_efficiency": [1.0], "fps": None}
    run.save(genome, MemberRecord.from_json(record))
    tensors = run.member_dir("g01-m00") / TENSORS_FILE
    run.genome("g01-m00")  # traces the architecture once, as a run does
    return {
        "arch": arch,
        "genome_mib": round(tensors.stat().st_size / 2**20, 2),
        "tensors_only_ms": median_ms(lambda: load_file(str(tensors)), repeats),
        "checked_genome_ms": median_ms(lambda: run.genome("g01-m00"), repeats),
        "sha256_ms": median_ms(lambda: sha256_file(tensors), repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", choices=sorted(SHAPES))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(arch, args.repeats, Path(folder)) for arch in args.arch or ["lenet5", "resnet18"]]
    emit("genome_checks", {"repeats": args.repeats, "rows": rows}, time.perf_counter() - started)


if __name__ == "__main__":
    main()
