"""`jetsynth grow`: seed 003's neuroevolution with shared parameters (Algorithm 1).

    modelSet = {h_i}; jointTrain(modelSet, N_i)
    for 1 to numIters: modelSet = select(modelSet, K); modelSet = mutate(modelSet, M);
                       jointTrain(modelSet, N_j)
    return select(modelSet, K)

select: the K best on the validation split, each member evaluated (and saved) with batch-norm
statistics of its own (`CALIBRATION_BATCHES`; the shared running statistics belong to whichever
members trained last and cost every member 0.25 to 1.5 points of validation accuracy on 14×14
MNIST, tools/grow_norm_stats.py) (with --coevolve, examples a selected member already
classifies count `gamma` times less for each such member, so later picks are rewarded for what
the others miss). mutate: members drawn from the selected (with replacement) grown by one random
R2R transform (R2WiderR, R2DeeperR or a wider R2DeeperR, `growth.SHAPES`; 1×1, 3×3 or 5×5;
2, 4 or 8 filter pairs) until there are M;
the selected stay. jointTrain(N): N single Adam updates, each on a member drawn at random (with
replacement) on the next batch of the training split; all members share their parameters
(`population`), and one optimiser holds one moment per shared tensor.

The run directory is a run like evolve's (config.json, events.jsonl, members/gII-mJJ with a
genome and record per member per iteration, generation = iteration + 1, the trained h_i being
g01-m00), plus grow.json (the settings and, when done, the final K) and population/ (the shared
tensors, Adam's moments and the members after the last finished iteration), from which a killed
run resumes; an unfinished iteration is redone from its start (its randomness is seeded by the
iteration, so the redo is the same).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from jetsynth.core.genome import Genome, Lineage, ancestor_genome, topology_for
from jetsynth.core.grow_genome import grow_genome
from jetsynth.core.metrics import efficiency, size_metrics
from jetsynth.core.records import MemberRecord
from jetsynth.data.load import Dataset, load_dataset
from jetsynth.data.stream import TrainingStream
from jetsynth.errors import JetsynthError
from jetsynth.nn.device import describe, resolve_amp, resolve_devices
from jetsynth.nn.gpu_lock import gpu_turn
from jetsynth.nn.growth import grown_factory, join_arch, next_uid, random_transform, split_arch
from jetsynth.nn.models import canonical_arch, resolve_factory
from jetsynth.nn.norm_stats import with_own_statistics
from jetsynth.nn.population import SharedPopulation
from jetsynth.run.bounds import MAX_STEPS
from jetsynth.run.config import EvolveConfig
from jetsynth.run.rundir import GROW_FILE, RunDirectory, member_id, open_run, read_object
from jetsynth.run.train import autocast, gradient_scaler, update
from jetsynth.storage import write_json

RESUMABLE = ("iterations", "device", "amp")
"""GrowConfig fields a resume may change: more iterations, another device or arithmetic."""
CALIBRATION_BATCHES = 16
"""Training batches (of --batch-size) that a member's own batch-norm statistics are estimated
from before it is evaluated and saved: the members share their running statistics, which
jointTrain last updated with other members' activations (see `nn.norm_stats`)."""
POPULATION_DIR = "population"
TENSORS = "shared.safetensors"
STATE = "state.json"


@dataclass(frozen=True)
class GrowConfig:
    """Algorithm 1's N_i (`initial_steps`), N_j (`steps`), K (`keep_best`), M (`population`)
    and iteration count; `gamma`: an example's weight is multiplied by it for every selected
    member that classifies it (--coevolve); `ensemble_epochs`: epochs of the combiner's
    training on the training split (--ensemble; the members' own images).
    `device`: where the population trains and is
    evaluated (--device as evolve takes it; the first of several GPUs: the members share their
    tensors, so they train on one); `amp`: mixed precision (None: `nn.device.resolve_amp`'s
    default for the device). Neither decides the result's meaning, so a resumed run may change
    them."""

    data: str = "digits"
    subset: float = 1.0
    val_split: float = 0.1
    input_size: int | None = None
    arch: str = "small-cnn"
    iterations: int = 10
    keep_best: int = 3
    population: int = 10
    initial_steps: int = 1000
    steps: int = 500
    batch_size: int = 64
    lr: float = 1e-3
    coevolve: bool = False
    gamma: float = 0.5
    ensemble: bool = False
    ensemble_epochs: int = 50
    seed: int = 0
    device: str = "auto"
    amp: str | None = None

    def check(self) -> None:
        """Raise JetsynthError naming every setting out of range (in backticks, as `setting`)."""
        problems = []
        if self.iterations < 0:
            problems.append(f"`iterations` must be 0 or more, not {self.iterations}")
        if not 1 <= self.keep_best <= self.population:
            problems.append(f"`keep_best` must be between 1 and `population` ({self.population}), "
                            f"not {self.keep_best}")
        if self.initial_steps < 0 or self.steps < 0:
            problems.append("`initial_steps` and `steps` must be 0 or more")
        if not 0.0 <= self.gamma <= 1.0:
            problems.append(f"`gamma` must be in [0, 1], not {self.gamma}")
        if self.val_split <= 0:
            problems.append("grow selects on a validation split: `val_split` must be above 0")
        updates = self.initial_steps + self.iterations * self.steps
        if updates > MAX_STEPS:
            problems.append(f"`initial_steps` + `iterations` × `steps` asks for {updates:,} updates; "
                            f"grow makes at most {MAX_STEPS:,}: give fewer iterations or steps")
        if problems:
            named = tuple(dict.fromkeys(re.findall(r"`(\w+)`", " ".join(problems))))
            raise JetsynthError("; ".join(problems), setting=named)

    def evolve_config(self) -> EvolveConfig:
        """The run's config.json, so report and export read a grow run like an evolution."""
        return EvolveConfig(data=self.data, subset=self.subset, arch=self.arch,
                            generations=self.iterations + 1, population=self.population,
                            batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                            val_split=self.val_split, input_size=self.input_size,
                            epochs=0, ancestor_epochs=0, device=self.device,
                            amp=self.amp).with_policies()

    def placement(self) -> tuple[str, str]:
        """(torch device, amp) the population trains on here: --device and --amp resolved
        against this machine, or one line saying why not (`nn.device`)."""
        device = resolve_devices(self.device)[0]
        return device, resolve_amp(self.amp, device)


@dataclass
class Member:
    id: str
    arch: str
    model: nn.Module
    parent: str | None = None
    correct: torch.Tensor | None = None  # per validation example
    evaluated: nn.Module | None = None  # a copy with its own batch-norm statistics
    val_accuracy: float = 0.0
    accuracy: float = 0.0


def select(correct: list[torch.Tensor], k: int, gamma: float | None = None) -> list[int]:
    """Indices of the K members picked in turn by (weighted) validation accuracy; with `gamma`
    (coevolution) every example a picked member classifies has its weight multiplied by gamma,
    so the next pick is scored mostly on what the picked ones miss. Ties go to the lower index."""
    weights = torch.ones(len(correct[0]), dtype=torch.float64)
    chosen: list[int] = []
    for _ in range(min(k, len(correct))):
        scores = [float((weights * c.double()).sum() / weights.sum()) if i not in chosen else -1.0
                  for i, c in enumerate(correct)]
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        chosen.append(best)
        if gamma is not None:
            weights = weights * torch.where(correct[best], gamma, 1.0).double()
    return chosen


@torch.no_grad()
def predictions(model: nn.Module, images, amp: str = "off") -> torch.Tensor:
    """The predicted class of every image (a tensor or `MappedImages`), on the CPU; computed on
    the model's device, 1,000 images at a time."""
    model.eval()
    device = next(model.parameters()).device
    found = []
    with autocast(device, amp):
        for start in range(0, len(images), 1000):
            chunk = images[start:start + 1000].to(device, non_blocking=True)
            found.append(model(chunk).argmax(1).cpu())
    return torch.cat(found)


def joint_train(members: list[Member], steps: int, dataset: Dataset, optimizer: torch.optim.Optimizer,
                generator: torch.Generator, batch_size: int, device: str = "cpu",
                amp: str = "off", scaler: torch.amp.GradScaler | None = None) -> None:
    """`steps` single updates, each on a member drawn uniformly with replacement, on `device`
    (where the members' tensors are) in `amp`'s mixed precision; batches come from
    `data.stream.TrainingStream` (resident on a GPU when small enough). `scaler`: fp16's gradient
    scaler, kept by the caller across calls (its scale is part of the training's state). On a GPU,
    each update holds it alone (`nn.gpu_lock`), as evolve's trainer does."""
    n = len(dataset.train_x)
    stream = TrainingStream(dataset, device)
    where = torch.device(device)
    order = torch.randperm(n, generator=generator)
    cursor = 0
    for _ in range(steps):
        member = members[int(torch.randint(len(members), (1,), generator=generator))]
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        images, labels = stream.batch(order[cursor:cursor + batch_size], generator)
        cursor += batch_size
        member.model.train()
        with gpu_turn(device):
            update(member.model, images, labels, optimizer, scaler, where, amp)


def calibration_batches(dataset: Dataset, seed: int, batch_size: int, device: str = "cpu"
                        ) -> Iterator[torch.Tensor]:
    """The CALIBRATION_BATCHES training batches (on `device`) a member's own batch-norm
    statistics come from: the same images for every member and every evaluation of a run (a
    resumed run evaluates as the uninterrupted one)."""
    order = torch.randperm(len(dataset.train_x), generator=torch.Generator().manual_seed(seed))
    stream = TrainingStream(dataset, device)
    generator = torch.Generator().manual_seed(seed)
    for indices in order[:CALIBRATION_BATCHES * batch_size].split(batch_size):
        yield stream.batch(indices, generator)[0]


class _Optimizer:
    """One Adam over the population's shared tensors, extended as mutations add new ones."""

    def __init__(self, population: SharedPopulation, lr: float):
        self.population = population
        self.adam = torch.optim.Adam(population.parameters(), lr=lr)
        self.known = {id(p) for p in population.parameters()}

    def extend(self) -> torch.optim.Optimizer:
        new = [p for p in self.population.parameters() if id(p) not in self.known]
        if new:
            self.adam.add_param_group({"params": new})
            self.known.update(id(p) for p in new)
        return self.adam

    def restore(self, moments: dict[str, dict[str, torch.Tensor]]) -> None:
        for key, state in moments.items():
            tensor = self.population.tensors.get(key)
            if tensor is not None and id(tensor) in self.known:
                # Adam keeps its step count on the CPU unless it is capturable
                self.adam.state[tensor] = {k: v.clone() if k == "step" else v.to(tensor.device)
                                           for k, v in state.items()}


class Grower:
    """Algorithm 1 in a run directory (see the module docstring)."""

    def __init__(self, config: GrowConfig, run: RunDirectory, dataset: Dataset, factory,
                 notice=print, device: str = "cpu", amp: str = "off"):
        self.config, self.run, self.dataset, self.notice = config, run, dataset, notice
        self.device, self.amp = device, amp
        self.population = SharedPopulation(factory, dataset.input_shape, dataset.classes, device)
        self.scaler = gradient_scaler(torch.device(device), amp)
        self.factory = factory
        self._topologies: dict[str, object] = {}
        self.ancestor_record: MemberRecord | None = None

    # ---- persistence
    def _save_state(self, iteration: int, members: list[Member], uid: int, optimizer) -> None:
        folder = self.run.root / POPULATION_DIR
        self.population.save(folder / TENSORS, optimizer, self.run.root)
        state = {"iteration": iteration, "next_uid": uid, "members": [
            {"id": m.id, "arch": m.arch, "parent": m.parent} for m in members]}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        write_json(folder / STATE, state, self.run.root)

    def _load_state(self):
        folder = self.run.root / POPULATION_DIR
        if not (folder / STATE).is_file():
            return None
        state = read_object(folder / STATE)
        moments = self.population.load(folder / TENSORS)
        if self.scaler is not None and isinstance(state.get("scaler"), dict):
            self.scaler.load_state_dict(state["scaler"])
        members = [Member(m["id"], m["arch"], self.population.build(m["arch"]), m["parent"])
                   for m in state["members"]]
        return state["iteration"], state["next_uid"], members, moments

    def _topology(self, arch: str):
        if arch not in self._topologies:
            self._topologies[arch] = topology_for(arch, self.dataset.input_shape,
                                                  self.dataset.classes,
                                                  grown_factory(self.factory, arch))
        return self._topologies[arch]

    def genome(self, member: Member, generation: int, index: int, parents: tuple[str, ...]) -> Genome:
        """The member as a genome: its architecture traced, all synapses live, ancestor tags for
        the base layers and per-transform tags for the grown ones (`grow_genome`)."""
        base_arch, transforms = split_arch(member.arch)
        base = ancestor_genome(base_arch, self.dataset.input_shape, self.dataset.classes, 0,
                               self._topology(base_arch))
        lineage = Lineage(member_id(generation, index), generation, index, parents)
        grown = grow_genome(base, transforms, lineage) if transforms else replace(base, lineage=lineage)
        model = member.evaluated if member.evaluated is not None else member.model
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return replace(grown, state=state,
                       extra={"preprocessing": self.dataset.preprocessing, "grow": True})

    def _evaluate(self, member: Member) -> None:
        data = self.dataset
        member.evaluated = with_own_statistics(
            member.model, calibration_batches(data, self.config.seed, self.config.batch_size, self.device))
        member.correct = predictions(member.evaluated, data.val_x, self.amp) == data.val_y
        member.val_accuracy = float(member.correct.float().mean())
        member.accuracy = float((predictions(member.evaluated, data.test_x, self.amp) == data.test_y
                                 ).float().mean())

    def _record(self, member: Member, generation: int, index: int, parents: tuple[str, ...],
                selected: bool) -> MemberRecord:
        genome = self.genome(member, generation, index, parents)
        metrics = size_metrics(genome, "kernel")
        base = self.ancestor_record.sizes() if self.ancestor_record is not None else metrics
        record = {"id": genome.lineage.id, "generation": generation, "member": index,
                  "parents": list(parents), "seed": self.config.seed, "arch": member.arch,
                  "accuracy": member.accuracy, "val_accuracy": member.val_accuracy,
                  "epochs": 0, "selected": selected, **metrics, **efficiency(base, metrics),
                  "fps": None, "params": sum(p.numel() for p in member.model.parameters()),
                  "device": self.device, "amp": self.amp}
        written = self.run.save(genome, MemberRecord.from_json(record, f"{genome.lineage.id}'s record"))
        member.id = genome.lineage.id
        return written

    # ---- Algorithm 1
    def run_all(self) -> list[Member]:
        config = self.config
        gamma = config.gamma if config.coevolve else None
        loaded = self._load_state()
        if loaded is None:
            torch.manual_seed(config.seed)
            members = [Member("", config.arch, self.population.build(config.arch))]
            optimizer = _Optimizer(self.population, config.lr)
            generator = torch.Generator().manual_seed(config.seed)
            self.notice(f"training h_i for {config.initial_steps} steps")
            joint_train(members, config.initial_steps, self.dataset, optimizer.extend(), generator,
                        config.batch_size, self.device, self.amp, self.scaler)
            self._evaluate(members[0])
            self.ancestor_record = self._record(members[0], 1, 0, (), True)
            first, uid = 1, next_uid(config.arch)
            self._save_state(0, members, uid, optimizer.adam)
            self.run.event("iteration_done", iteration=0, best=members[0].id,
                           val_accuracy=members[0].val_accuracy)
        else:
            done, uid, members, moments = loaded
            optimizer = _Optimizer(self.population, config.lr)
            optimizer.restore(moments)
            self.ancestor_record = self.run.record(member_id(1, 0))
            for member in members:
                self._evaluate(member)
            first = done + 1
            self.notice(f"resuming after iteration {done}")
        for iteration in range(first, config.iterations + 1):
            generator = torch.Generator().manual_seed(config.seed * 100003 + iteration)
            chosen = select([m.correct for m in members], config.keep_best, gamma)
            selected = [members[i] for i in chosen]
            grown: list[Member] = []
            while len(selected) + len(grown) < config.population:
                parent = selected[int(torch.randint(len(selected), (1,), generator=generator))]
                transform = random_transform(parent.model, self._topology(parent.arch).output.name,
                                             uid, generator)
                uid += 1
                base, existing = split_arch(parent.arch)
                arch = join_arch(base, [*existing, transform])
                grown.append(Member("", arch, self.population.build(arch), parent.id))
            members = selected + grown
            joint_train(members, config.steps, self.dataset, optimizer.extend(), generator,
                        config.batch_size, self.device, self.amp, self.scaler)
            previous = {m.id for m in selected}
            for index, member in enumerate(members):
                self._evaluate(member)
                parents = (member.id,) if member.id in previous else (member.parent,)
                self._record(member, iteration + 1, index, parents, False)
            self._save_state(iteration, members, uid, optimizer.adam)
            best = max(members, key=lambda m: m.val_accuracy)
            self.run.event("iteration_done", iteration=iteration, best=best.id,
                           val_accuracy=best.val_accuracy, shared_scalars=self.population.numel())
            self.notice(f"iteration {iteration}: best {best.id} validation {best.val_accuracy:.4f} "
                        f"test {best.accuracy:.4f}; {self.population.numel():,} shared scalars "
                        f"for {len(members)} members")
        final = [members[i] for i in select([m.correct for m in members], config.keep_best, gamma)]
        return final


def grow(config: GrowConfig, run_dir: Path, resume: bool = False, notice=print) -> dict:
    """Run (or resume) Algorithm 1; returns the grow.json summary. A device this machine lacks
    (--device, --amp) ends with one line before anything is read or written."""
    config.check()
    device, amp = config.placement()
    config = replace(config, arch=canonical_arch(config.arch))
    factory = resolve_factory(config.arch, trusted=True)
    dataset = load_dataset(config.evolve_config().data_spec())
    if dataset.val_x is None or not len(dataset.val_x):
        raise JetsynthError("grow selects on a validation split and this data has none: "
                            "raise `val_split`", setting="val_split")
    grow_path = Path(run_dir) / GROW_FILE
    if resume and grow_path.is_file():
        stored = read_object(grow_path).get("config", {})
        differing = sorted(k for k, v in asdict(config).items()
                           if k not in RESUMABLE and stored.get(k) != v)
        if differing:
            raise JetsynthError(f"{run_dir} was grown with other settings ({', '.join(differing)}); "
                                "resume it with the same options or choose another `run_dir`",
                                setting="run_dir")
    run = open_run(Path(run_dir), config.evolve_config(), resume, {config.arch: factory})
    try:
        write_json(grow_path, {"config": asdict(config)}, run.root)
        run.event("grow_resumed" if resume else "grow_started", device=device, amp=amp)
        notice(describe([device], amp))
        base_factory = resolve_factory(split_arch(config.arch)[0], trusted=True)  # an --arch grown already
        final = Grower(config, run, dataset, base_factory, notice, device, amp).run_all()
        summary = {"config": asdict(config), "device": device, "amp": amp,
                   "final": [{"id": m.id, "arch": m.arch, "val_accuracy": m.val_accuracy,
                              "accuracy": m.accuracy} for m in final]}
        if config.ensemble:
            from jetsynth.ship.ensemble import build_ensemble
            summary["ensemble"] = build_ensemble(run, [m.id for m in final], dataset, config)
        write_json(grow_path, summary, run.root)
        run.event("grow_done", best=final[0].id)
        return summary
    finally:
        run.release()

