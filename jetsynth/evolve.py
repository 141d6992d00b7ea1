"""The generation loop: train the ancestor, then synthesise, train and record each generation's
offspring, writing every result to the run directory as soon as it exists.

A killed run resumes where it stopped: a member is complete once its `member.json` is written
(after its genome), complete members are never trained again, and every random draw is seeded by
(run seed, generation, member) so a resumed run computes what an uninterrupted one would.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from .data import DataSpec, load_dataset
from .errors import JetsynthError
from .genome import Genome, Lineage, ancestor_genome, load_genome, save_genome
from .mating import ALIGNMENTS, MATING_FUNCTIONS, STRUCTURES, rate_for_factor
from .metrics import efficiency, size_metrics
from .network import CLUSTER_MODES
from .selection import POLICIES, SelectionConfig, select_parents
from .similarity import cluster_presence, overlap_matrix
from .storage import append_jsonl, read_json, write_json
from .synthesis import SynthesisConfig, synthesize
from .train import PRECISIONS, TrainConfig, train_genome

CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
MEMBERS_DIR = "members"
MEMBER_FILE = "member.json"

DEFAULT_EPOCHS = {"digits": (20, 5)}
FALLBACK_EPOCHS = (5, 2)


@dataclass(frozen=True)
class EvolveConfig:
    """Everything that determines a run. `generations` counts the ancestor as generation 1
    (seed 001's numbering); `epochs`/`ancestor_epochs` of None pick the dataset's defaults."""

    data: str = "digits"
    subset: float = 1.0
    arch: str = "lenet5"
    generations: int = 6
    population: int = 1
    parents: int = 1
    cluster: str = "kernel"
    keep: float = 0.8
    balance: float = 0.5
    truncation: float = 0.1
    cluster_pressure: float = 0.5
    epochs: int | None = None
    ancestor_epochs: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    precision: str = "fp32"
    alignment: str = "tag"
    mating: str = "sum"
    structure: str = "intersection"
    alphas: tuple[float, ...] | None = None
    selection: str = "random"
    overlap_band: tuple[float, float] = (0.5, 0.9)
    reinit: bool = False
    seed: int = 0
    executor: str = "local"
    bench: str = "none"

    def resolved(self) -> EvolveConfig:
        """The same configuration with dataset-dependent defaults filled in, checked."""
        spec = DataSpec.parse(self.data, self.subset, self.seed)
        ancestor_epochs, epochs = DEFAULT_EPOCHS.get(spec.kind, FALLBACK_EPOCHS)
        config = replace(
            self,
            epochs=self.epochs if self.epochs is not None else epochs,
            ancestor_epochs=(
                self.ancestor_epochs if self.ancestor_epochs is not None else ancestor_epochs
            ),
        )
        config.check()
        return config

    def check(self) -> None:
        problems = [
            (self.generations < 1, "--generations must be at least 1"),
            (self.population < 1, "--population must be at least 1"),
            (not 0.0 < self.keep <= 1.0, "--keep must lie in (0, 1]"),
            (not 0.0 <= self.balance <= 1.0, "--balance must lie in [0, 1]"),
            (not 0.0 <= self.truncation < 1.0, "--truncation must lie in [0, 1)"),
            (not 0.0 <= self.cluster_pressure <= 1.0, "--cluster-pressure must lie in [0, 1]"),
            ((self.epochs or 0) < 0 or (self.ancestor_epochs or 0) < 0, "epochs must be >= 0"),
            (self.batch_size < 1, "--batch-size must be at least 1"),
            (self.lr <= 0, "--lr must be positive"),
            (self.cluster not in CLUSTER_MODES, "--cluster must be kernel or filter"),
            (self.precision not in PRECISIONS, "--precision must be fp32 or fp16"),
            (self.alignment not in ALIGNMENTS, "--alignment must be tag or position"),
            (self.mating not in MATING_FUNCTIONS, "--mating must be sum or product"),
            (self.structure not in STRUCTURES, "--structure must be intersection or union"),
            (self.selection not in POLICIES, "--selection must be random, fitness or similarity"),
            (self.parents < 1, "--parents must be at least 1"),
            (
                self.alphas is not None and len(self.alphas) != self.parents,
                f"give one --alpha per parent ({self.parents}), or none for equal weights",
            ),
            (
                not 0.0 <= self.overlap_band[0] <= self.overlap_band[1] <= 1.0,
                "--overlap-band LOW HIGH must satisfy 0 <= LOW <= HIGH <= 1",
            ),
            (
                self.executor != "local",
                f"--executor {self.executor} is not available in this version; use local",
            ),
            (
                self.bench != "none",
                f"--bench {self.bench} is not available in this version; use none",
            ),
        ]
        for failed, message in problems:
            if failed:
                raise JetsynthError(message)

    def synthesis(self, parents: int) -> SynthesisConfig:
        """Synthesis settings for an offspring of `parents` parents (fewer than --parents when
        the previous generation is smaller, e.g. the ancestor alone)."""
        alphas = self.alphas if self.alphas is not None and len(self.alphas) == parents else None
        if self.alphas is not None and alphas is None:
            alphas = tuple(a / sum(self.alphas[:parents]) for a in self.alphas[:parents])
        return SynthesisConfig(
            cluster=self.cluster,
            keep=self.keep,
            balance=self.balance,
            truncation=self.truncation,
            cluster_pressure=self.cluster_pressure,
            mating=self.mating,
            structure=self.structure,
            alignment=self.alignment,
            alphas=alphas,
        )

    def selection_config(self) -> SelectionConfig:
        return SelectionConfig(policy=self.selection, band=tuple(self.overlap_band))

    def training(self, ancestor: bool) -> TrainConfig:
        return TrainConfig(
            epochs=self.ancestor_epochs if ancestor else self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            precision=self.precision,
        )

    def data_spec(self) -> DataSpec:
        return DataSpec.parse(self.data, self.subset, self.seed)


class Observer:
    """Hooks for progress displays; the default does nothing."""

    def run_started(self, run_dir: Path, done: int, total: int) -> None: ...

    def member_started(self, member_id: str) -> None: ...

    def step(self, done: int, total: int) -> None: ...

    def member_finished(self, record: dict) -> None: ...


def member_id(generation: int, member: int) -> str:
    return f"g{generation:02d}-m{member:02d}"


def member_seed(seed: int, generation: int, member: int) -> int:
    return int(np.random.SeedSequence([seed, generation, member]).generate_state(1)[0])


def versions() -> dict:
    from . import __version__

    return {
        "jetsynth": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


class RunDirectory:
    """The on-disk state of a run: config, events, and one folder per member."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def member_dir(self, mid: str) -> Path:
        return self.root / MEMBERS_DIR / mid

    def record(self, mid: str) -> dict | None:
        path = self.member_dir(mid) / MEMBER_FILE
        return read_json(path) if path.is_file() else None

    def records(self) -> list[dict]:
        folder = self.root / MEMBERS_DIR
        if not folder.is_dir():
            return []
        found = [self.record(p.name) for p in sorted(folder.iterdir()) if p.is_dir()]
        return [r for r in found if r is not None]

    def genome(self, mid: str) -> Genome:
        return load_genome(self.member_dir(mid))

    def event(self, kind: str, **fields_) -> None:
        append_jsonl(self.root / EVENTS_FILE, {"event": kind, "time": round(time.time(), 3),
                                               **fields_})

    def stored_config(self) -> EvolveConfig | None:
        path = self.root / CONFIG_FILE
        if not path.is_file():
            return None
        stored = read_json(path)["config"]
        known = {f.name for f in fields(EvolveConfig)}
        values = {k: v for k, v in stored.items() if k in known}
        for key in ("alphas", "overlap_band"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        return EvolveConfig(**values)

    def save(self, genome: Genome, record: dict) -> None:
        folder = self.member_dir(genome.lineage.id)
        save_genome(genome, folder)
        write_json(folder / MEMBER_FILE, record)


def open_run(root: Path, config: EvolveConfig, resume: bool) -> RunDirectory:
    """Create a run directory, or reopen one to resume; a resumed run must keep its
    configuration (only --generations may grow)."""
    run = RunDirectory(root)
    stored = run.stored_config()
    if resume:
        if stored is None:
            raise JetsynthError(f"nothing to resume in {root}: no {CONFIG_FILE}; drop --resume")
        differing = [
            f.name
            for f in fields(EvolveConfig)
            if f.name != "generations" and getattr(stored, f.name) != getattr(config, f.name)
        ]
        if differing:
            raise JetsynthError(
                f"{root} was started with other settings ({', '.join(differing)}); resume it "
                "with the same options or choose another --run-dir"
            )
    else:
        if run.root.exists() and any(run.root.iterdir()):
            raise JetsynthError(
                f"{root} already exists and is not empty: add --resume to continue it, "
                "or choose another --run-dir"
            )
    run.root.mkdir(parents=True, exist_ok=True)
    write_json(run.root / CONFIG_FILE, {"config": asdict(config), "versions": versions()})
    return run


def environment_record(keep: float, m: int) -> dict:
    """Seed 000's environmental factor R = (1 − r)^m for this offspring: R is --keep (the same
    for every m, as the paper tuned it) and r the per-parent rate that yields it."""
    return {"m": m, "R": keep, "r": round(rate_for_factor(keep, m), 6)}


def _finish(run: RunDirectory, trained, lineage: Lineage, seed: int, ancestor: dict | None,
            cluster: str, keep: float):
    metrics = {**trained.metrics, **size_metrics(trained.genome, cluster)}
    base = ancestor if ancestor is not None else metrics
    record = {
        "id": lineage.id,
        "generation": lineage.generation,
        "member": lineage.member,
        "parents": list(lineage.parents),
        "seed": seed,
        **metrics,
        **efficiency(base, metrics),
        "environment": environment_record(keep, max(1, len(lineage.parents))),
        "fps": None,
    }
    run.save(trained.genome, record)
    run.event("member_done", member=lineage.id, accuracy=metrics["accuracy"],
              synapses=metrics["synapses"])
    return record


def _newborn(offspring: Genome, seed: int) -> Genome:
    """Seed 001's 'newborn' reading: the offspring's structure with fresh random weights."""
    fresh = ancestor_genome(offspring.arch, offspring.input_shape, offspring.num_classes, seed)
    return replace(offspring, state=fresh.state).with_masks(offspring.masks, offspring.lineage)


def evolve(
    config: EvolveConfig, run_dir: Path, resume: bool = False, observer: Observer | None = None
) -> list[dict]:
    """Run (or resume) an evolution and return every member's record, ancestor first."""
    config = config.resolved()
    observer = observer or Observer()
    dataset = load_dataset(config.data_spec())
    run = open_run(Path(run_dir), config, resume)
    total = 1 + (config.generations - 1) * config.population
    done = len(run.records())
    run.event("run_resumed" if resume else "run_started", members_done=done, members_total=total)
    observer.run_started(run.root, done, total)

    ancestor_id = member_id(1, 0)
    ancestor = run.record(ancestor_id)
    if ancestor is None:
        seed = member_seed(config.seed, 1, 0)
        observer.member_started(ancestor_id)
        genome = ancestor_genome(config.arch, dataset.input_shape, dataset.classes, seed)
        genome = replace(genome, extra={"preprocessing": dataset.preprocessing})
        trained = train_genome(genome, dataset, config.training(True), seed, observer.step,
                               run.member_dir(ancestor_id))
        ancestor = _finish(run, trained, genome.lineage, seed, None, config.cluster, 1.0)
        observer.member_finished(ancestor)
    records = [ancestor]
    previous = [ancestor]
    for generation in range(2, config.generations + 1):
        current = []
        genomes = {r["id"]: run.genome(r["id"]) for r in previous}
        overlaps = None
        if config.selection == "similarity":
            overlaps = overlap_matrix(
                [cluster_presence(genomes[r["id"]], config.cluster) for r in previous]
            )
        for index in range(config.population):
            mid = member_id(generation, index)
            record = run.record(mid)
            if record is None:
                seed = member_seed(config.seed, generation, index)
                rng = torch.Generator().manual_seed(seed)
                chosen = select_parents(previous, config.parents, config.selection_config(), rng,
                                        overlaps)
                parent_ids = tuple(previous[i]["id"] for i in chosen)
                lineage = Lineage(mid, generation, index, parent_ids)
                observer.member_started(mid)
                child = synthesize([genomes[p] for p in parent_ids],
                                   config.synthesis(len(parent_ids)), rng, lineage)
                if config.reinit:
                    child = _newborn(child, seed)
                trained = train_genome(child, dataset, config.training(False), seed,
                                       observer.step, run.member_dir(mid))
                record = _finish(run, trained, lineage, seed, ancestor, config.cluster, config.keep)
                observer.member_finished(record)
            records.append(record)
            current.append(record)
        run.event("generation_done", generation=generation)
        previous = current
    run.event("run_done", members=len(records))
    return records
