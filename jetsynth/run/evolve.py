"""The generation loop: train the ancestor, then synthesise, train and record each generation's
offspring, writing every result to the run directory as soon as it exists.

A killed run resumes where it stopped: a member is complete once its `member.json` is written
(after its genome), complete members are never trained again, and every random draw is seeded by
(run seed, generation, member) so a resumed run computes what an uninterrupted one would.
Each member goes through the member pipeline (`member`: breed, train, record); an executor
(`executors`: this process, or Ray) trains them, and members are recorded as they finish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import torch

from jetsynth.calibration.costs import latency_costs
from jetsynth.calibration.model import LatencyModel, default_path, load_model
from jetsynth.core.environment import adaptive_keep
from jetsynth.core.frontier import meets_target
from jetsynth.core.genome import Genome
from jetsynth.core.metrics import at_chance, chance_accuracy
from jetsynth.core.records import MemberRecord
from jetsynth.core.selection import pick_member, selection_accuracy, speed
from jetsynth.core.similarity import aligned_presences, overlap_matrix
from jetsynth.core.stopping import stale_generations
from jetsynth.data.dataset import Dataset
from jetsynth.data.load import load_dataset
from jetsynth.errors import JetsynthError
from jetsynth.nn.models import Factory, resolve_factory
from jetsynth.nn.weights import load_state_dict
from jetsynth.run.config import EvolveConfig
from jetsynth.run.executors import Executor, open_executor, placement, placement_line
from jetsynth.run.measurement import CACHE_FILE, MeasurementCache, Speedometer, run_samples, target_label
from jetsynth.run.member import (
    AncestorStart,
    MemberTask,
    ancestor_start,
    ancestor_task,
    data_name,
    member_id,
    offspring_task,
    record_member,
)
from jetsynth.run.recording import Recorder, TimingPool, open_timing_pool
from jetsynth.run.rundir import RunDirectory, open_run, read_object
from jetsynth.run.train import (
    TrainResult,
    inherited_loss,
    screening_images,
    screening_rows,
    train_genome,
)
from jetsynth.storage import write_json


class Observer:
    """Hooks for progress displays; the default does nothing."""

    def run_started(self, run_dir: Path, done: int, total: int) -> None: ...

    def member_started(self, member_id: str) -> None: ...

    def step(self, done: int, total: int) -> None: ...

    def member_finished(self, record: MemberRecord) -> None: ...

    def member_timing(self, member_id: str) -> None:
        """A trained member waits for, or is on, a board of a timing pool (`--bench a --bench b`)."""

    def notice(self, text: str) -> None:
        """A one-line remark the user should see (e.g. a calibration that was skipped)."""


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
        stored = read_object(kept)
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
        write_json(kept, {"own": True}, run.root)
    else:
        model.save(kept, run.root)
    return model


def generation_keep(config: EvolveConfig, previous: list[MemberRecord], ancestor: MemberRecord,
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


def parent_pool(config: EvolveConfig, records: list[MemberRecord], previous: list[MemberRecord],
                floor: float) -> tuple[list[MemberRecord], int | None]:
    """The members the next generation is bred from: the previous generation; or, with adaptive
    pressure after a generation whose every member fell below the floor, the members at the
    floor of the latest generation that had any (a retreat: returns that generation too), so one
    generation below the floor is followed by offspring of networks that kept it."""
    if config.pressure != "adaptive" or any(selection_accuracy(r) >= floor for r in previous):
        return previous, None
    for generation in sorted({r.generation for r in records}, reverse=True):
        kept = [r for r in records if r.generation == generation and selection_accuracy(r) >= floor]
        if kept:
            return kept, generation
    return previous, None


def _repaired(run: RunDirectory, config: EvolveConfig, task: MemberTask, trained: TrainResult,
              genomes: dict[str, Genome], previous: list[MemberRecord], dataset, observer) -> TrainResult:
    """--grow-on-drop, on the driver after training: the offspring repaired by growth when it
    lost too much (see `repair`); the repair is marked in its genome (`extra['repair']`) and the
    events."""
    from jetsynth.core.repair import repair_offspring

    lineage = task.genome.lineage
    by_id = {r.id: r for r in previous}
    parents = [p for p in lineage.parents if p in by_id]
    best = max(parents, key=lambda p: selection_accuracy(by_id[p]))
    result, info = repair_offspring(
        trained, genomes[best], selection_accuracy(by_id[best]), config.grow_on_drop,
        lambda grown: train_genome(grown, dataset, config.training(False), task.seed, observer.step))
    if info is None:
        return trained
    run.event("repair", member=lineage.id, **asdict(info))
    grown = "deepened" if info.transform.startswith("deep") else "widened"
    observer.notice(f"{lineage.id}: lost {100 * info.drop:.2f} points; {grown} {info.layer} "
                    f"({info.val_before:.4f} → {info.val_after:.4f}, "
                    f"{'kept' if info.kept else 'not kept'})")
    genome = replace(result.genome, extra={**result.genome.extra, "repair": asdict(info)})
    return replace(result, genome=genome)


def _order(record: MemberRecord) -> tuple[int, int]:
    return record.generation, record.member


def reaches_target(record: MemberRecord, config: EvolveConfig, ancestor_accuracy: float) -> bool:
    """Whether `record` meets --target-fps (measured FPS) at or above the accuracy floor (both
    on validation: pass the ancestor's `selection_accuracy`)."""
    return meets_target(record, config.target_fps, config.floor(ancestor_accuracy))


def evolve(
    config: EvolveConfig, run_dir: Path, resume: bool = False, observer: Observer | None = None,
    trust_code: bool = False, factory: Factory | None = None, dataset: Dataset | None = None,
) -> list[MemberRecord]:
    """Run (or resume) an evolution and return every member's record, ancestor first. With
    --target-fps, the run stops after the generation in which a member reached the target.
    A resumed run's config may come from its files: user code it names (`module:function`,
    `file.py:function`) is imported only with `trust_code` (the user repeated --arch or gave
    --trust-code); a new run's config is the caller's own word. `factory` and `dataset` (the
    Python API's objects, which no name imports) stand in for resolving `config.arch` and
    loading `config.data`."""
    stored = RunDirectory(Path(run_dir)).stored_config() if resume else None
    if stored is not None and config.pressure_on is None:
        # the default follows whether a calibration exists; a resumed run keeps what it chose
        config = replace(config, pressure_on=stored.pressure_on)
    multiple, why = config.channel_multiple_choice()
    multiple_line = f"channel multiple {multiple}: {'as the run started' if resume else why}"
    config = config.resolved()
    devices = placement(config)
    factory = factory or resolve_factory(config.arch, trusted=trust_code or not resume)
    observer = observer or Observer()
    dataset = dataset if dataset is not None else load_dataset(config.data_spec(),
                                                               _decode_progress(observer))
    targets = config.bench_targets()
    target = targets[0] if targets else None
    if isinstance(target, str):  # before the ancestor trains, not after
        from jetsynth.ship.bench import require_provider

        require_provider(target, "--bench ort (onnxruntime on this CPU)")
    given = given_latency_model(config, target) if target is not None else None
    if (config.pressure_on == "latency" and given is None
            and not default_path(target_label(target)).is_file()):
        raise JetsynthError(_NO_LATENCY_MODEL)
    start = None
    if RunDirectory(Path(run_dir)).record(member_id(1, 0)) is None:  # everything checked first
        weights = load_state_dict(Path(config.ancestor_weights)) if config.ancestor_weights else None
        start = ancestor_start(config, dataset, factory, weights)
    executor = open_executor(config, dataset, devices)
    timing_pool = open_timing_pool(targets)
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    root = Path(run_dir)
    made = None if resume else _what_start_makes(root)
    run = None
    try:
        run = open_run(root, config, resume, {config.arch: factory})
        try:
            return _evolve(config, run, resume, observer, dataset, target, given, start,
                           executor, timing_pool, devices, (multiple_line,))
        finally:
            run.release()
    except Exception:
        if made is not None and (run is None or not run.training_started):
            _remove_start(root, made)
        raise
    finally:
        torch.set_num_threads(threads)
        if timing_pool is not None:
            timing_pool.close()
        executor.close()


def _what_start_makes(root: Path) -> str | None:
    """What a new run's start may remove again when it fails: the whole folder when it does not
    exist yet, the contents of an empty folder, nothing of a folder that holds anything (a run
    that `open_run` refuses to overwrite)."""
    if not root.exists():
        return "folder"
    if root.is_dir() and not root.is_symlink() and not any(root.iterdir()):
        return "contents"
    return None


def _remove_start(root: Path, made: str) -> None:
    """Undo a start that failed before the ancestor trained, so the corrected command just
    works: the run folder when this start made it ('folder'), else what it wrote into the empty
    folder it was given ('contents')."""
    import shutil

    if made == "folder":
        shutil.rmtree(root, ignore_errors=True)
    elif root.is_dir():
        for entry in root.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _evolve(config: EvolveConfig, run: RunDirectory, resume: bool, observer: Observer, dataset,
            target, given: LatencyModel | None, start: AncestorStart | None,
            executor: Executor, timing_pool: TimingPool | None = None,
            devices: list[str] | None = None, notes: tuple[str, ...] = ()) -> list[MemberRecord]:
    """The generations of `evolve` in the run directory it holds the lock of; `timing_pool`
    times each generation's members on several devices (None: on `target` in turn); `notes`:
    lines for the run's start that only the caller knows (why the channel multiple)."""
    speedometer = None
    if target is not None:
        speedometer = Speedometer(target, config.precision, config.bench_batch, config.bench_seconds,
                                  MeasurementCache(run.root / CACHE_FILE),
                                  _latency_model(config, run, target, given, observer),
                                  config.measure_every, run_samples(sorted(run.records(), key=_order)),
                                  config.channel_multiple)
    if config.pressure_on == "latency" and (speedometer is None or speedometer.model is None):
        raise JetsynthError(_NO_LATENCY_MODEL)
    total = 1 + (config.generations - 1) * config.population
    done = len(run.records())
    run.event("run_resumed" if resume else "run_started", members_done=done, members_total=total)
    observer.run_started(run.root, done, total)
    observer.notice(_threads_note(target))
    observer.notice(placement_line(config, devices or []))
    for line in notes:
        observer.notice(line)
    run.event("placement", devices=devices or [], amp=config.amp)
    recorder = Recorder(run, config, speedometer, timing_pool, observer.member_timing)
    if timing_pool is not None:
        names = ", ".join(d.name for d in timing_pool.devices.devices)
        observer.notice(f"timing members on {len(timing_pool.devices.devices)} devices in parallel, "
                        f"one member per device at a time: {names}")
    for line in run.set_aside:
        run.event("member_set_aside", detail=line)
        observer.notice(f"damaged member set aside, trained again: {line}")

    ancestor_id = member_id(1, 0)
    ancestor = run.record(ancestor_id)
    if ancestor is None:
        task = ancestor_task(config, run, start)
        if start.transfer is not None:
            for line in start.transfer.lines(data_name(config)):
                observer.notice(line)
        run.training_started = True
        observer.member_started(ancestor_id)
        ((task, trained),) = executor.train([task], observer.step)
        if config.ancestor_epochs or config.ancestor_weights:  # an ancestor meant to have learned
            _check_chance(run, trained, dataset, observer)
        ancestor = record_member(run, task, trained, None, config, speedometer)
        observer.member_finished(ancestor)
    run.training_started = True
    if speedometer is not None:
        from jetsynth.ship.bench import MEMBER_MODEL

        speedometer.use_reference(run.member_dir(ancestor_id) / MEMBER_MODEL, ancestor.fps)
    records = [ancestor]
    previous = [ancestor]
    screen = None
    if config.screen > 1:
        rows = screening_rows(len(dataset.train_x), config.seed)
        screen = partial(inherited_loss, images=screening_images(dataset, rows),
                         labels=dataset.train_y[rows], device=(devices or ["cpu"])[0],
                         amp=config.amp or "auto")
    for generation in range(2, config.generations + 1):
        if _target_reached(run, previous, config, selection_accuracy(ancestor)):
            break
        if _patience_spent(run, records, config, selection_accuracy(ancestor)):
            break
        floor = config.floor(selection_accuracy(ancestor))
        previous, retreat = parent_pool(config, records, previous, floor)
        keep, terms = generation_keep(config, previous, ancestor, retreat is not None)
        if config.pressure == "adaptive":
            run.event("pressure", generation=generation, **terms)
        if retreat is not None:
            run.event("retreat", generation=generation, parents_from=retreat)
            observer.notice(f"generation {generation - 1} fell below the accuracy floor: generation "
                            f"{generation} is bred from generation {retreat}'s members at the floor")
        genomes = {r.id: run.genome(r.id) for r in previous}
        costs = None
        if config.pressure_on == "latency":
            costs = latency_costs(speedometer.model, next(iter(genomes.values())).topology)
        overlaps = None
        if config.selection == "similarity":
            overlaps = overlap_matrix(
                aligned_presences([genomes[r.id].masks for r in previous], config.cluster)
            )
        found = {i: run.record(member_id(generation, i)) for i in range(config.population)}
        todo = [i for i, record in found.items() if record is None]
        tasks = _bred(config, run, observer, todo, previous, genomes, overlaps, generation, keep, floor,
                      costs, screen)
        for task, trained in executor.train(tasks, observer.step):
            if config.grow_on_drop is not None:
                trained = _repaired(run, config, task, trained, genomes, previous, dataset, observer)
            for record in recorder.add(task, trained, ancestor):
                found[record.member] = record
                observer.member_finished(record)
        for record in recorder.finish():
            found[record.member] = record
            observer.member_finished(record)
        current = [found[i] for i in range(config.population)]
        records.extend(current)
        run.event("generation_done", generation=generation)
        previous = current
    else:
        _target_reached(run, previous, config, selection_accuracy(ancestor))
    run.event("run_done", members=len(records))
    return records


def _check_chance(run: RunDirectory, trained: TrainResult, dataset, observer: Observer) -> None:
    """Warn (one line, an event, and `chance_accuracy` in the ancestor's record, so nothing is
    offered to ship) when the trained ancestor is no better than always answering the most
    common class (`metrics.at_chance`; validation accuracy, test without a validation split)."""
    labels = dataset.val_y if dataset.val_y is not None and len(dataset.val_y) else dataset.test_y
    chance = chance_accuracy(torch.bincount(labels, minlength=dataset.classes).tolist())
    accuracy = trained.metrics.get("val_accuracy")
    accuracy = trained.metrics["accuracy"] if accuracy is None else accuracy
    if not at_chance(accuracy, chance):
        return
    trained.metrics["chance_accuracy"] = round(chance, 6)
    run.event("ancestor_at_chance", accuracy=accuracy, chance=chance)
    observer.notice(f"warning: the trained ancestor scores {accuracy:.4f}, chance is {chance:.4f} "
                    "(the most common class): offspring cannot keep anything; train it longer "
                    "(--ancestor-epochs, --lr) or check the data")


def _decode_progress(observer: Observer) -> Callable[[int, int], None]:
    """Progress of decoding a folder into the cache, as up to five lines (every quarter)."""
    said: set[int] = set()

    def report(done: int, total: int) -> None:
        quarter = 4 * done // max(total, 1)
        if quarter not in said:
            said.add(quarter)
            observer.notice(f"decoding the folder's images into the cache: {done}/{total}")

    return report


def _threads_note(target) -> str:
    """What computes the run, in words: training threads and, when timed here, timing threads."""
    count = torch.get_num_threads()
    note = f"training with {count} torch thread{'s' if count != 1 else ''} (--threads)"
    if isinstance(target, str):
        from jetsynth.core.trials import TRIALS
        from jetsynth.ship.bench import BACKEND_WORDS, THREADS

        note += (f"; timing each member with {BACKEND_WORDS[target]}, {THREADS} thread, the median "
                 f"of {TRIALS} trials")
    return note


def _bred(config: EvolveConfig, run: RunDirectory, observer: Observer, todo: list[int],
          previous: list[MemberRecord], genomes: dict, overlaps, generation: int, keep: float,
          floor: float, costs: dict[str, float] | None,
          screen: Callable[[Genome], float] | None) -> Iterator[MemberTask]:
    """The tasks of members `todo` of `generation`, each bred when the executor asks for it."""
    for index in todo:
        observer.member_started(member_id(generation, index))
        yield offspring_task(config, run, observer.notice, previous, genomes, overlaps, generation,
                             index, keep, floor, costs, screen)


def _patience_spent(run: RunDirectory, records: list[MemberRecord], config: EvolveConfig,
                    ancestor_accuracy: float) -> bool:
    """Log and return whether --patience generations in a row improved nothing at the floor."""
    if config.patience is None:
        return False
    floor = config.floor(ancestor_accuracy)
    stale = stale_generations(records, floor)
    if stale < config.patience:
        return False
    run.event("patience_stop", stale_generations=stale, patience=config.patience,
              accuracy_floor=floor, ship=pick_member(records, floor=floor).id)
    return True


def _target_reached(run: RunDirectory, generation: list[MemberRecord], config: EvolveConfig,
                    ancestor_accuracy: float) -> bool:
    """Log (once per check) and return whether a member of `generation` met the target."""
    hits = [r for r in generation if reaches_target(r, config, ancestor_accuracy)]
    if hits:
        best = max(hits, key=lambda r: r.fps)
        run.event("target_reached", member=best.id, fps=best.fps, accuracy=best.accuracy,
                  val_accuracy=best.val_accuracy, target_fps=config.target_fps,
                  accuracy_floor=config.floor(ancestor_accuracy))
    return bool(hits)
