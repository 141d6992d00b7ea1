"""The member pipeline: breed an offspring (or draw the ancestor) into a self-contained
`MemberTask`, train it (in this process or on a Ray worker: see `executors`), then measure and
record it in the run directory. The generation loop (`evolve`) only schedules these steps.

Breeding and recording happen where the run directory is (the driver); training needs only the
task and the dataset, so it can run anywhere. Every random draw of a member is seeded by (run
seed, generation, member), so members can be bred, trained and recorded in any order and still
come out as a sequential run would make them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from jetsynth.core.genome import Genome, Lineage, ancestor_genome, topology_for
from jetsynth.core.grow_genome import harmonize
from jetsynth.core.mating import rate_for_factor
from jetsynth.core.metrics import efficiency, size_metrics
from jetsynth.core.records import MemberRecord
from jetsynth.core.screening import pick_draw
from jetsynth.core.selection import select_parents, selection_accuracy
from jetsynth.core.synthesis import masks_cost, prepare, synapse_costs, synthesize
from jetsynth.data.dataset import Dataset
from jetsynth.errors import JetsynthError
from jetsynth.nn.models import Factory, architectures_with_keys
from jetsynth.nn.structure import INPUT
from jetsynth.nn.weights import Transfer, transfer_state
from jetsynth.run.config import EvolveConfig
from jetsynth.run.measurement import Speedometer
from jetsynth.run.rundir import RunDirectory, member_id
from jetsynth.run.train import TrainConfig, TrainResult, train_genome
from jetsynth.storage import sha256_file


@dataclass(frozen=True)
class MemberTask:
    """Everything training one member needs besides the dataset: its untrained genome, its
    seed and training settings. `keep` (the pressure it was drawn under) and `ordinal` (its place
    in the run, counting the ancestor as 0: which members --measure-every times) are for the
    record; `checkpoint_dir` is where a trainer that shares the driver's disk saves finished
    epochs (None: no checkpoints)."""

    genome: Genome
    seed: int
    training: TrainConfig
    keep: float = 1.0
    ordinal: int = 0
    checkpoint_dir: Path | None = None

    @property
    def id(self) -> str:
        return self.genome.lineage.id


def member_seed(seed: int, generation: int, member: int) -> int:
    return int(np.random.SeedSequence([seed, generation, member]).generate_state(1)[0])


def environment_record(keep: float, m: int) -> dict:
    """Seed 000's environmental factor R = (1 − r)^m for this offspring: R is --keep (the same
    for every m, as the paper tuned it) and r the per-parent rate that yields it."""
    return {"m": m, "R": keep, "r": round(rate_for_factor(keep, m), 6)}


@dataclass(frozen=True)
class AncestorStart:
    """The ancestor as it will train, built and checked before anything is written: its genome
    (given weights fitted in) and what the transfer changed to fit them (None: no weights)."""

    genome: Genome
    transfer: Transfer | None = None


def data_name(config: EvolveConfig) -> str:
    """The dataset in a user's words: 'photos/' for folder:photos, else the --data spec."""
    kind, _, where = config.data.partition(":")
    return f"{Path(where).name}/" if kind == "folder" and where else config.data


def ancestor_start(config: EvolveConfig, dataset: Dataset, factory: Factory,
                   weights: dict | None) -> AncestorStart:
    """Generation 1: the architecture freshly initialised, or starting from `weights`
    (--ancestor-weights, loaded by the caller) fitted as a transfer (`weights.transfer_state`:
    a new head for other classes, a first conv adapted to other channels). Every refusal
    happens here, before the run directory exists."""
    seed = member_seed(config.seed, 1, 0)
    topology = topology_for(config.arch, dataset.input_shape, dataset.classes, factory)
    genome = ancestor_genome(config.arch, dataset.input_shape, dataset.classes, seed, topology)
    genome = replace(genome, extra={"preprocessing": dataset.preprocessing})
    if weights is None:
        return AncestorStart(genome)
    head = topology.output.name
    first = tuple(layer.name for layer in topology.layers
                  if layer.kind == "conv" and not layer.depthwise
                  and all(space == INPUT for space in layer.in_spaces))
    state, transfer = transfer_state(weights, genome.state, config.ancestor_weights, config.arch,
                                     head, topology.build().get_submodule(head), first,
                                     architectures_with_keys)
    if transfer.head is not None and config.ancestor_epochs == 0:
        change = transfer.head
        raise JetsynthError(f"--ancestor-epochs 0 would keep the new head '{change.layer}' untrained "
                            f"(the weights have {change.given} classes, {data_name(config)} "
                            f"{change.classes}): give --ancestor-epochs 1 or more")
    genome = genome.with_state(state)
    if transfer.head is not None or transfer.channels:
        genome = replace(genome, extra={**genome.extra, "transfer": transfer.to_json()})
    return AncestorStart(genome, transfer)


def ancestor_task(config: EvolveConfig, run: RunDirectory, start: AncestorStart) -> MemberTask:
    """The ancestor's training task from its checked `start`; the weights it starts from and
    what was changed to fit them go to the run's events."""
    mid = member_id(1, 0)
    training = config.training(True)
    transfer = start.transfer
    if transfer is not None:
        run.event("ancestor_weights", path=config.ancestor_weights,
                  sha256=sha256_file(Path(config.ancestor_weights)), **transfer.to_json())
        if transfer.head is not None:
            training = replace(training, head=transfer.head.layer, head_epochs=config.head_epochs)
    return MemberTask(start.genome, member_seed(config.seed, 1, 0), training, 1.0, 0,
                      run.member_folder(mid))


def offspring_task(config: EvolveConfig, run: RunDirectory, notice, previous: list[MemberRecord],
                   genomes: dict[str, Genome], overlaps, generation: int, index: int, keep: float,
                   floor: float, costs: dict[str, float] | None = None,
                   screen: Callable[[Genome], float] | None = None) -> MemberTask:
    """Breed member `index` of `generation` from `previous` (their genomes in `genomes`) under
    the keep share `keep`; `notice(text)` tells the user when the pressure had to give way.
    `costs`: one synapse's cost per layer for --pressure-on latency. With --screen K > 1 and
    `screen` (a genome's loss as inherited, lower is better), K offspring are drawn and the one
    `screen` scores best among the draws no costlier than their median is kept
    (`screening.pick_draw`); the draws' losses and costs go to the run's events."""
    mid = member_id(generation, index)
    seed = member_seed(config.seed, generation, index)
    rng = torch.Generator().manual_seed(seed)
    breedings: dict = {}
    draws = [viable_offspring(config, previous, genomes, overlaps, rng, generation, index, keep,
                              floor, costs, breedings)
             for _ in range(config.screen if screen is not None else 1)]
    child, drawn_keep = draws[0]
    if len(draws) > 1:
        unit_costs = synapse_costs(child.topology, config.synthesis(1, keep, costs))
        # rounded, so that float noise from another thread count cannot change a resumed pick
        losses = [round(screen(genome), 5) for genome, _ in draws]
        spent = [masks_cost(genome.masks, unit_costs) for genome, _ in draws]
        best = pick_draw(losses, spent)
        child, drawn_keep = draws[best]
        run.event("screened", member=mid, losses=losses, costs=[round(x, 1) for x in spent],
                  chosen=best)
    lineage = child.lineage
    wanted = min(config.parents, len(previous))
    if drawn_keep != keep:
        run.event("pressure_lifted", member=mid, parent=lineage.parents[0])
        notice(f"{mid}: no parent left a viable offspring under --keep "
               f"{keep:g}; it inherits {lineage.parents[0]}'s structure")
    elif len(lineage.parents) < wanted:
        run.event("fewer_parents", member=mid, parents=len(lineage.parents), wanted=wanted)
        notice(f"{mid}: no {wanted} parents left a viable offspring; "
               f"mated from {len(lineage.parents)}")
    if config.reinit:
        child = newborn(child, seed)
    ordinal = (generation - 2) * config.population + index + 1
    return MemberTask(child, seed, config.training(False), drawn_keep, ordinal, run.member_folder(mid))


def train_member(task: MemberTask, dataset: Dataset, on_step=None) -> TrainResult:
    """The part of the pipeline that may run anywhere: train the task's genome."""
    return train_genome(task.genome, dataset, task.training, task.seed, on_step, task.checkpoint_dir)


def record_member(run: RunDirectory, task: MemberTask, trained: TrainResult,
                  ancestor: MemberRecord | None, config: EvolveConfig,
                  speedometer: Speedometer | None) -> MemberRecord:
    """Measure (with --bench) and write the trained member: its genome, then `member.json`
    (whose presence marks it done); returns the record as written. `ancestor`: the ancestor's
    record (None for the ancestor)."""
    record = member_record(task, trained, ancestor, config)
    if speedometer is not None:
        record = record.with_speed(speedometer.assess(
            trained.genome, run.member_folder(task.id), task.ordinal, config.target_fps,
            keeps_floor(record, ancestor, config), shipped_metadata(trained.genome, record, run)))
    return save_member(run, trained, record)


def shipped_metadata(genome: Genome, record: MemberRecord, run: RunDirectory) -> dict:
    """What `jetsynth export` writes into the member's ONNX file, so that the file --bench times
    is the one that ships (`measurement.Speedometer.plan`)."""
    from jetsynth.ship.export import genome_metadata

    return genome_metadata(genome, record, run.root)


def member_record(task: MemberTask, trained: TrainResult, ancestor: MemberRecord | None,
                  config: EvolveConfig) -> MemberRecord:
    """The trained member's record before its speed: metrics, efficiency against `ancestor`
    (None for the ancestor itself), environment; fps None. Built here, in member.json's layout
    and order, and checked as a reader would check it."""
    lineage = task.genome.lineage
    metrics = {**trained.metrics, **size_metrics(trained.genome, config.cluster)}
    base = ancestor.sizes() if ancestor is not None else metrics
    written = {
        "id": lineage.id,
        "generation": lineage.generation,
        "member": lineage.member,
        "parents": list(lineage.parents),
        "seed": task.seed,
        **metrics,
        **efficiency(base, metrics),
        "environment": environment_record(task.keep, config.mates),
        "fps": None,
    }
    if "repair" in trained.genome.extra:
        written["repair"] = trained.genome.extra["repair"]
    return MemberRecord.from_json(written, f"{lineage.id}'s record")


def keeps_floor(record: MemberRecord, ancestor: MemberRecord | None, config: EvolveConfig) -> bool:
    """Whether the member of `record` keeps the run's accuracy floor (validation accuracies)."""
    base = ancestor if ancestor is not None else record
    return selection_accuracy(record) >= config.floor(selection_accuracy(base))


def save_member(run: RunDirectory, trained: TrainResult, record: MemberRecord) -> MemberRecord:
    """Write the member's genome, then its `member.json` (the mark that it is done); returns
    the record as written."""
    record = run.save(trained.genome, record)
    run.event("member_done", member=record.id, accuracy=record.accuracy,
              val_accuracy=record.val_accuracy, synapses=record.synapses)
    return record


def newborn(offspring: Genome, seed: int) -> Genome:
    """Seed 001's 'newborn' reading: the offspring's structure with fresh random weights."""
    fresh = ancestor_genome(offspring.arch, offspring.input_shape, offspring.num_classes, seed,
                            offspring.topology)
    return replace(offspring, state=fresh.state).with_masks(offspring.masks, offspring.lineage)


MATINGS = 5


def viable_offspring(config: EvolveConfig, previous: list[MemberRecord], genomes: dict[str, Genome],
                     overlaps, rng: torch.Generator, generation: int, index: int, keep: float,
                     floor: float, costs: dict[str, float] | None = None,
                     breedings: dict | None = None) -> tuple[Genome, float]:
    """Select parents and synthesise; returns the offspring and the keep share it was drawn
    under. Parents whose structures leave no viable offspring (a whole layer or a class lost in
    every draw) are replaced by another selection; after MATINGS selections the offspring is
    mated from one parent fewer, down to one. Under strong pressure m sparse siblings can share
    no live layer, and a parent pressed to one synapse per class loses a class with almost any
    unit it loses; then, last, the offspring inherits one parent's structure whole (keep 1).
    A run goes on rather than stop; the lineage records the parents the offspring had, and the
    pressure stays the run's (`mates` is --parents whatever this offspring got). `breedings`
    keeps each (parents, settings)'s `synthesis.prepare` for the next draw from them (--screen)."""
    mid = member_id(generation, index)
    failure = None
    attempts = [(count, keep) for count in range(min(config.parents, len(previous)), 0, -1)]
    for count, share in [*attempts, (1, 1.0)]:
        for _ in range(MATINGS):
            chosen = select_parents(previous, count, config.selection_config(floor), rng, overlaps)
            parent_ids = tuple(previous[i].id for i in chosen)
            lineage = Lineage(mid, generation, index, parent_ids)
            try:
                settings = config.synthesis(len(parent_ids), share, costs)
                breeding = (breedings or {}).get((parent_ids, settings))
                if breeding is None:
                    breeding = prepare(harmonize([genomes[p] for p in parent_ids]), settings)
                    if breedings is not None:
                        breedings[(parent_ids, settings)] = breeding
                offspring = synthesize(list(breeding.parents), settings, rng, lineage, breeding)
                return offspring, share
            except JetsynthError as exc:
                failure = exc
    raise failure
