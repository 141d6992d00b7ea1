"""The generation loop: train the ancestor, then synthesise, train and record each generation's
offspring, writing every result to the run directory as soon as it exists.

A killed run resumes where it stopped: a member is complete once its `member.json` is written
(after its genome), complete members are never trained again, and every random draw is seeded by
(run seed, generation, member) so a resumed run computes what an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .calibration.model import LatencyModel, default_path, load_model
from .config import EvolveConfig
from .data import load_dataset
from .environment import adaptive_keep
from .errors import JetsynthError
from .frontier import meets_target
from .genome import Genome, Lineage, ancestor_genome, topology_for
from .mating import rate_for_factor
from .measurement import CACHE_FILE, MeasurementCache, Speedometer, run_samples, target_label
from .metrics import efficiency, size_metrics
from .models import Factory, resolve_factory
from .pressure_costs import latency_costs
from .rundir import RunDirectory, open_run
from .selection import pick_member, select_parents, selection_accuracy, speed
from .similarity import cluster_presence, overlap_matrix
from .stopping import stale_generations
from .storage import read_json, write_json
from .synthesis import synthesize
from .train import train_genome
from .weights import file_digest, fit_state, load_state_dict


class Observer:
    """Hooks for progress displays; the default does nothing."""

    def run_started(self, run_dir: Path, done: int, total: int) -> None: ...

    def member_started(self, member_id: str) -> None: ...

    def step(self, done: int, total: int) -> None: ...

    def member_finished(self, record: dict) -> None: ...

    def notice(self, text: str) -> None:
        """A one-line remark the user should see (e.g. a calibration that was skipped)."""


def member_id(generation: int, member: int) -> str:
    return f"g{generation:02d}-m{member:02d}"


def member_seed(seed: int, generation: int, member: int) -> int:
    return int(np.random.SeedSequence([seed, generation, member]).generate_state(1)[0])


def environment_record(keep: float, m: int) -> dict:
    """Seed 000's environmental factor R = (1 − r)^m for this offspring: R is --keep (the same
    for every m, as the paper tuned it) and r the per-parent rate that yields it."""
    return {"m": m, "R": keep, "r": round(rate_for_factor(keep, m), 6)}


def _finish(run: RunDirectory, trained, lineage: Lineage, seed: int, ancestor: dict | None,
            config: EvolveConfig, keep: float, speedometer: Speedometer | None, ordinal: int):
    metrics = {**trained.metrics, **size_metrics(trained.genome, config.cluster)}
    base = ancestor if ancestor is not None else metrics
    record = {
        "id": lineage.id,
        "generation": lineage.generation,
        "member": lineage.member,
        "parents": list(lineage.parents),
        "seed": seed,
        **metrics,
        **efficiency(base, metrics),
        "environment": environment_record(keep, config.mates),
        "fps": None,
    }
    if speedometer is not None:
        floor = config.floor(selection_accuracy(base))
        record.update(speedometer.assess(trained.genome, run.member_dir(lineage.id), ordinal,
                                         config.target_fps, selection_accuracy(metrics) >= floor))
    run.save(trained.genome, record)
    run.event("member_done", member=lineage.id, accuracy=metrics["accuracy"],
              val_accuracy=metrics.get("val_accuracy"), synapses=metrics["synapses"])
    return record


LATENCY_MODEL_FILE = "latency-model.json"
_NO_LATENCY_MODEL = ("--pressure-on latency needs a calibrated latency model of the bench target: "
                     "run `jetsynth calibrate` for it or give --latency-model FILE")
OWN_MODEL = "none"


def given_latency_model(config: EvolveConfig, target) -> LatencyModel | None:
    """--latency-model FILE loaded and checked against the run (None for none or 'none'), before
    anything is written, so a wrong file leaves no half-made run directory."""
    if config.latency_model in (None, OWN_MODEL):
        return None
    model = load_model(Path(config.latency_model))
    model.check_matches(target_label(target), config.precision, config.bench_batch, config.latency_model)
    return model


def _latency_model(config: EvolveConfig, run: RunDirectory, target, given: LatencyModel | None,
                   observer: Observer) -> LatencyModel | None:
    """The calibrated latency model this run predicts with: --latency-model FILE, else
    calibration/NAME.json when it exists and matches the device, precision and batch, else None
    (the run fits its own; --latency-model none asks for that). The choice is made once and kept
    in RUN/latency-model.json, so a resumed run predicts as the uninterrupted one would."""
    kept = run.root / LATENCY_MODEL_FILE
    if kept.is_file():
        stored = read_json(kept)
        return None if stored.get("own") else load_model(kept)
    model = given
    if model is None and config.latency_model is None:
        found = default_path(target_label(target))
        if found.is_file():
            model = load_model(found)
            try:
                model.check_matches(target_label(target), config.precision, config.bench_batch,
                                    str(found))
            except JetsynthError as exc:
                run.event("latency_model_ignored", path=str(found), reason=str(exc))
                observer.notice(f"not predicting with {found}: {exc}")
                model = None
            else:
                run.event("latency_model", path=str(found))
                observer.notice(f"predicting unmeasured members with {found}")
    if model is None:
        write_json(kept, {"own": True})
    else:
        model.save(kept)
    return model


def generation_keep(config: EvolveConfig, previous: list[dict], ancestor: dict,
                    retreat: bool = False) -> tuple[float, dict]:
    """The environmental pressure (keep share) for the generation bred from `previous`: --keep,
    or with --pressure adaptive, `adaptive_keep` of the fastest member that keeps the floor and
    the best accuracy of `previous` (validation accuracies, `selection_accuracy`). A `retreat`
    (see `parent_pool`) is bred under the pressure of a generation standing at the floor: a
    quarter of the full pressure, whatever its parents once reached."""
    if config.pressure != "adaptive":
        return config.keep, {"keep": config.keep}
    floor = config.floor(selection_accuracy(ancestor))
    speeds = [speed(r) for r in previous if selection_accuracy(r) >= floor and speed(r)]
    best = floor if retreat else max(selection_accuracy(r) for r in previous)
    return adaptive_keep(config.keep, max(speeds, default=None), config.target_fps, best, floor,
                         selection_accuracy(ancestor))


def parent_pool(config: EvolveConfig, records: list[dict], previous: list[dict],
                floor: float) -> tuple[list[dict], int | None]:
    """The members the next generation is bred from: the previous generation; or, with adaptive
    pressure after a generation whose every member fell below the floor, the members at the
    floor of the latest generation that had any (a retreat: returns that generation too), so one
    generation below the floor is followed by offspring of networks that kept it."""
    if config.pressure != "adaptive" or any(selection_accuracy(r) >= floor for r in previous):
        return previous, None
    for generation in sorted({r["generation"] for r in records}, reverse=True):
        kept = [r for r in records if r["generation"] == generation and selection_accuracy(r) >= floor]
        if kept:
            return kept, generation
    return previous, None


def _newborn(offspring: Genome, seed: int) -> Genome:
    """Seed 001's 'newborn' reading: the offspring's structure with fresh random weights."""
    fresh = ancestor_genome(offspring.arch, offspring.input_shape, offspring.num_classes, seed,
                            offspring.topology)
    return replace(offspring, state=fresh.state).with_masks(offspring.masks, offspring.lineage)


MATINGS = 5


def _viable_offspring(config: EvolveConfig, previous: list[dict], genomes: dict[str, Genome],
                      overlaps, rng: torch.Generator, generation: int, index: int, keep: float,
                      floor: float, costs: dict[str, float] | None = None) -> tuple[Genome, float]:
    """Select parents and synthesise; returns the offspring and the keep share it was drawn
    under. Parents whose structures leave no viable offspring (a whole layer or a class lost in
    every draw) are replaced by another selection; after MATINGS selections the offspring is
    mated from one parent fewer, down to one. Under strong pressure m sparse siblings can share
    no live layer, and a parent pressed to one synapse per class loses a class with almost any
    unit it loses; then, last, the offspring inherits one parent's structure whole (keep 1).
    A run goes on rather than stop; the lineage records the parents the offspring had, and the
    pressure stays the run's (`mates` is --parents whatever this offspring got)."""
    mid = member_id(generation, index)
    failure = None
    attempts = [(count, keep) for count in range(min(config.parents, len(previous)), 0, -1)]
    for count, share in [*attempts, (1, 1.0)]:
        for _ in range(MATINGS):
            chosen = select_parents(previous, count, config.selection_config(floor), rng, overlaps)
            parent_ids = tuple(previous[i]["id"] for i in chosen)
            lineage = Lineage(mid, generation, index, parent_ids)
            try:
                return synthesize([genomes[p] for p in parent_ids],
                                  config.synthesis(len(parent_ids), share, costs), rng, lineage), share
            except JetsynthError as exc:
                failure = exc
    raise failure


def _order(record: dict) -> tuple[int, int]:
    return record["generation"], record["member"]


def reaches_target(record: dict, config: EvolveConfig, ancestor_accuracy: float) -> bool:
    """Whether `record` meets --target-fps (measured FPS) at or above the accuracy floor (both
    on validation: pass the ancestor's `selection_accuracy`)."""
    return meets_target(record, config.target_fps, config.floor(ancestor_accuracy))


def evolve(
    config: EvolveConfig, run_dir: Path, resume: bool = False, observer: Observer | None = None,
    trust_code: bool = False,
) -> list[dict]:
    """Run (or resume) an evolution and return every member's record, ancestor first. With
    --target-fps, the run stops after the generation in which a member reached the target.
    A resumed run's config may come from its files: user code it names (`module:function`,
    `file.py:function`) is imported only with `trust_code` (the user repeated --arch or gave
    --trust-code); a new run's config is the caller's own word."""
    config = config.resolved()
    factory = resolve_factory(config.arch, trusted=trust_code or not resume)
    observer = observer or Observer()
    dataset = load_dataset(config.data_spec())
    target = config.bench_target()
    given = given_latency_model(config, target) if target is not None else None
    if (config.pressure_on == "latency" and given is None
            and not default_path(target_label(target)).is_file()):
        raise JetsynthError(_NO_LATENCY_MODEL)
    weights = None
    if config.ancestor_weights and RunDirectory(Path(run_dir)).record(member_id(1, 0)) is None:
        weights = load_state_dict(Path(config.ancestor_weights))
    run = open_run(Path(run_dir), config, resume, {config.arch: factory})
    try:
        return _evolve(config, run, resume, observer, dataset, target, given, factory, weights)
    finally:
        run.release()


def _evolve(config: EvolveConfig, run: RunDirectory, resume: bool, observer: Observer, dataset,
            target, given: LatencyModel | None, factory: Factory,
            weights: dict | None) -> list[dict]:
    """The generations of `evolve` in the run directory it holds the lock of."""
    speedometer = None
    if target is not None:
        speedometer = Speedometer(target, config.precision, config.bench_batch, config.bench_seconds,
                                  MeasurementCache(run.root / CACHE_FILE),
                                  _latency_model(config, run, target, given, observer),
                                  config.measure_every, run_samples(sorted(run.records(), key=_order)))
    if config.pressure_on == "latency" and (speedometer is None or speedometer.model is None):
        raise JetsynthError(_NO_LATENCY_MODEL)
    total = 1 + (config.generations - 1) * config.population
    done = len(run.records())
    run.event("run_resumed" if resume else "run_started", members_done=done, members_total=total)
    observer.run_started(run.root, done, total)

    ancestor_id = member_id(1, 0)
    ancestor = run.record(ancestor_id)
    if ancestor is None:
        seed = member_seed(config.seed, 1, 0)
        observer.member_started(ancestor_id)
        topology = topology_for(config.arch, dataset.input_shape, dataset.classes, factory)
        genome = ancestor_genome(config.arch, dataset.input_shape, dataset.classes, seed, topology)
        genome = replace(genome, extra={"preprocessing": dataset.preprocessing})
        if weights is not None:  # the given weights replace the fresh initialisation
            genome = genome.with_state(fit_state(weights, genome.state, config.ancestor_weights,
                                                 config.arch))
            run.event("ancestor_weights", path=config.ancestor_weights,
                      sha256=file_digest(Path(config.ancestor_weights)))
        trained = train_genome(genome, dataset, config.training(True), seed, observer.step,
                               run.member_dir(ancestor_id))
        ancestor = _finish(run, trained, genome.lineage, seed, None, config, 1.0, speedometer, 0)
        observer.member_finished(ancestor)
    records = [ancestor]
    previous = [ancestor]
    for generation in range(2, config.generations + 1):
        if _target_reached(run, previous, config, selection_accuracy(ancestor)):
            break
        if _patience_spent(run, records, config, selection_accuracy(ancestor)):
            break
        current = []
        floor = config.floor(selection_accuracy(ancestor))
        previous, retreat = parent_pool(config, records, previous, floor)
        keep, terms = generation_keep(config, previous, ancestor, retreat is not None)
        if config.pressure == "adaptive":
            run.event("pressure", generation=generation, **terms)
        if retreat is not None:
            run.event("retreat", generation=generation, parents_from=retreat)
            observer.notice(f"generation {generation - 1} fell below the accuracy floor: generation "
                            f"{generation} is bred from generation {retreat}'s members at the floor")
        genomes = {r["id"]: run.genome(r["id"]) for r in previous}
        costs = None
        if config.pressure_on == "latency":
            costs = latency_costs(speedometer.model, next(iter(genomes.values())).topology)
        overlaps = None
        if config.selection == "similarity":
            overlaps = overlap_matrix(
                [cluster_presence(genomes[r["id"]].masks, config.cluster) for r in previous]
            )
        for index in range(config.population):
            mid = member_id(generation, index)
            record = run.record(mid)
            if record is None:
                seed = member_seed(config.seed, generation, index)
                rng = torch.Generator().manual_seed(seed)
                observer.member_started(mid)
                child, drawn_keep = _viable_offspring(config, previous, genomes, overlaps, rng,
                                                      generation, index, keep, floor, costs)
                lineage = child.lineage
                wanted = min(config.parents, len(previous))
                if drawn_keep != keep:
                    run.event("pressure_lifted", member=mid, parent=lineage.parents[0])
                    observer.notice(f"{mid}: no parent left a viable offspring under --keep "
                                    f"{keep:g}; it inherits {lineage.parents[0]}'s structure")
                elif len(lineage.parents) < wanted:
                    run.event("fewer_parents", member=mid, parents=len(lineage.parents),
                              wanted=wanted)
                    observer.notice(f"{mid}: no {wanted} parents left a viable offspring; "
                                    f"mated from {len(lineage.parents)}")
                if config.reinit:
                    child = _newborn(child, seed)
                trained = train_genome(child, dataset, config.training(False), seed,
                                       observer.step, run.member_dir(mid))
                ordinal = (generation - 2) * config.population + index + 1
                record = _finish(run, trained, lineage, seed, ancestor, config, drawn_keep, speedometer,
                                 ordinal)
                observer.member_finished(record)
            records.append(record)
            current.append(record)
        run.event("generation_done", generation=generation)
        previous = current
    else:
        _target_reached(run, previous, config, selection_accuracy(ancestor))
    run.event("run_done", members=len(records))
    return records


def _patience_spent(run: RunDirectory, records: list[dict], config: EvolveConfig,
                    ancestor_accuracy: float) -> bool:
    """Log and return whether --patience generations in a row improved nothing at the floor."""
    if config.patience is None:
        return False
    floor = config.floor(ancestor_accuracy)
    stale = stale_generations(records, floor)
    if stale < config.patience:
        return False
    run.event("patience_stop", stale_generations=stale, patience=config.patience,
              accuracy_floor=floor, ship=pick_member(records, floor=floor)["id"])
    return True


def _target_reached(run: RunDirectory, generation: list[dict], config: EvolveConfig,
                    ancestor_accuracy: float) -> bool:
    """Log (once per check) and return whether a member of `generation` met the target."""
    hits = [r for r in generation if reaches_target(r, config, ancestor_accuracy)]
    if hits:
        best = max(hits, key=lambda r: r["fps"])
        run.event("target_reached", member=best["id"], fps=best["fps"], accuracy=best["accuracy"],
                  val_accuracy=best.get("val_accuracy"), target_fps=config.target_fps,
                  accuracy_floor=config.floor(ancestor_accuracy))
    return bool(hits)
