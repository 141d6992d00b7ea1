"""Everything that determines an evolution run, checked in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from jetsynth.core.genome import PRECISIONS
from jetsynth.core.mating import ALIGNMENTS, MATING_FUNCTIONS, STRUCTURES
from jetsynth.core.pressure_costs import PRESSURE_ON
from jetsynth.core.selection import POLICIES, SelectionConfig
from jetsynth.core.synthesis import SynthesisConfig
from jetsynth.core.trials import TRIALS
from jetsynth.data.dataset import VAL_SPLIT, DataSpec
from jetsynth.devices.inventory import BenchTarget
from jetsynth.devices.profiles import DeviceProfile, get_profile
from jetsynth.errors import JetsynthError
from jetsynth.nn.device import AMP_CHOICES
from jetsynth.nn.structure import CLUSTER_MODES
from jetsynth.run.bounds import MAX_ALPHA, MAX_THREADS
from jetsynth.run.train import TrainConfig

BENCH_CHOICES = ("none", "ort", "ort-cpu", "ort-cuda", "ort-trt")
PRESSURES = ("fixed", "adaptive")
EXECUTORS = ("local", "ray")
PLACEMENT = ("executor", "ray_address", "cpus_per_member", "gpus_per_member", "bench_pool",
             "device", "amp")
"""Settings that say where members train or which boards of the bench's kind time them, not what
they become: a run may resume under others."""
DEFAULT_EPOCHS = {"digits": (20, 5)}
FALLBACK_EPOCHS = (5, 2)
PRESETS = ("seed000", "seed001", "seed002", "seed004")
"""--preset: the seed papers' settings, exactly the defaults of every run before the user-first
defaults (fixed pressure on synapses, kernel clusters, exact widths, 6 generations)."""
SEED_GENERATIONS = 6
PAPER_SETTINGS = {"seed000": {"generations": 10, "cluster": "filter"}}
"""Settings a seed paper states where the shared seed defaults differ: seed 000 (Fig. 2) runs
to generation 10 and takes each filter as a synaptic cluster (§3.1)."""
GENERATIONS_CAP = {"digits": 8}
FALLBACK_GENERATIONS_CAP = 30
"""Without a preset a run ends by itself (--patience at the floor); this only bounds it (on the
built-in digits, 8: the quick start stays under 2 minutes)."""
DEFAULT_PATIENCE = 2
DEFAULT_MAX_DROP = 0.01
DEFAULT_CHANNEL_MULTIPLE = 8


def resolve_bench(name: str) -> BenchTarget:
    """A bench target: an onnxruntime backend name ('ort' is onnxruntime's CPU) or a Device from
    the inventory (or user@host[:port])."""
    if name in BENCH_CHOICES and name != "none":
        return "ort-cpu" if name == "ort" else name
    from jetsynth.devices.inventory import resolve_device

    return resolve_device(name)


def unconfirmed_devices(stored: EvolveConfig, bench_given: bool) -> list[str]:
    """The devices a resumed run would connect to only because its config.json names them: a
    run directory may come from someone else, so a device is used when --bench names it again,
    or when the user's own inventory holds a device of that name (the inventory then says where
    it is); otherwise it is listed here. Empty when --bench was given."""
    if bench_given:
        return []
    from jetsynth.devices.inventory import load_devices

    names = [n for n in (stored.bench, *stored.bench_pool) if n not in BENCH_CHOICES]
    if not names:
        return []
    own = load_devices()
    return [n for n in names if n not in own]


@dataclass(frozen=True)
class EvolveConfig:
    """Everything that determines a run. `generations` counts the ancestor as generation 1
    (seed 001's numbering); `epochs`/`ancestor_epochs` of None pick the dataset's defaults."""

    data: str = "digits"
    subset: float = 1.0
    arch: str = "lenet5"
    generations: int | None = None
    population: int = 1
    screen: int | None = None
    """Offspring drawn per member; the one whose inherited weights lose least on a slice of the
    training split is trained (`run.train.inherited_loss`). 1: seed 001's single draw."""
    parents: int = 1
    cluster: str | None = None
    keep: float | None = None
    balance: float | None = None
    truncation: float = 0.1
    cluster_pressure: float | None = None
    epochs: int | None = None
    ancestor_epochs: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    precision: str = "fp32"
    alignment: str = "tag"
    mating: str = "sum"
    structure: str = "intersection"
    alphas: tuple[float, ...] | None = None
    selection: str | None = None
    overlap_band: tuple[float, float] = (0.5, 0.9)
    reinit: bool = False
    seed: int = 0
    executor: str = "local"
    ray_address: str | None = None
    cpus_per_member: int = 1
    gpus_per_member: float = 0.0
    bench: str = "none"
    bench_pool: tuple[str, ...] = ()
    """Further devices beside `bench` (the first --bench), boards of its kind that time members
    in parallel; measurements are keyed and calibrated under `bench`'s name."""
    bench_batch: int = 1
    bench_seconds: float = 0.5
    target_fps: float | None = None
    accuracy_floor: float | None = None
    measure_every: int = 1
    latency_model: str | None = None
    pressure: str | None = None
    ancestor_weights: str | None = None
    val_split: float = VAL_SPLIT
    input_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: bool = False
    max_drop: float | None = None
    patience: int | None = None
    threads: int = 1
    """torch's intra-op threads while training (0: torch's own default, one per core). How the
    run computes, not what: a resumed run may change it."""
    grow_on_drop: float | None = None
    pressure_on: str | None = None
    head_epochs: int = 1
    """--ancestor-weights whose head is replaced (other classes): epochs of the new head alone,
    before the ancestor's epochs."""
    # presets and channel groups
    preset: str | None = None
    """A seed paper's settings (`PRESETS`): the policies below as every run had them before the
    user-first defaults; None: shrink until the floor (see `with_policies`)."""
    channel_multiple: int | None = None
    """Every channel space keeps a multiple of this many live channels [8; 1 with a preset; the
    device profile's with --bench naming a device that has one (`channel_multiple_choice`)]."""
    # where and in what arithmetic members train (nn.device); placement: a resume may change them
    device: str = "auto"
    """auto | cpu | cuda | cuda:N, resolved on the machine that runs (or resumes) the run; each
    member's record says which device trained it."""
    amp: str | None = None
    """bf16 | fp16 | off; None: bf16 (fp16 where the GPU lacks it) on a GPU, off on the CPU."""

    def with_policies(self) -> EvolveConfig:
        """Policies filled in where left open: the user-first defaults, or with --preset the
        seed papers' (`_seed_policies`).

        User-first: shrink until the floor. The floor is one point (--max-drop 0.01) unless
        --accuracy-floor is given; adaptive pressure from --keep 0.5; whole filters (only removed
        filters make a dense network faster) with 0.9 of the pressure on clusters; the budget
        counted in multiply-accumulates (or, when --bench names a target with a calibrated
        latency model, in its latency) at balance 0.5, so the expensive convolutions carry it;
        eight screened draws per member; channel spaces in groups of 8 (or of the --bench
        device profile's multiple, `channel_multiple_choice`); the run ends when
        --patience 2 generations in a row gained nothing at the floor, within 30 generations (8
        on the built-in digits).
        With --target-fps, the closed loop as under the seed presets (balance 0, fps selection,
        --keep 0.8)."""
        if self.preset is not None:
            return self._seed_policies()
        closed = self.target_fps is not None
        floor_given = self.max_drop is not None or self.accuracy_floor is not None
        return replace(
            self,
            generations=self.generations if self.generations is not None else GENERATIONS_CAP.get(
                self.data.partition(":")[0], FALLBACK_GENERATIONS_CAP),
            cluster=self.cluster or "filter",
            balance=self.balance if self.balance is not None else (0.0 if closed else 0.5),
            cluster_pressure=self.cluster_pressure if self.cluster_pressure is not None else 0.9,
            selection=self.selection or ("fps" if closed else "random"),
            pressure=self.pressure or "adaptive",
            keep=self.keep if self.keep is not None else (0.8 if closed else 0.5),
            pressure_on=self.pressure_on or self._cost_pressure(),
            screen=self.screen if self.screen is not None else 8,
            max_drop=self.max_drop if floor_given else DEFAULT_MAX_DROP,
            patience=self.patience if self.patience is not None else DEFAULT_PATIENCE,
            channel_multiple=self.channel_multiple_choice()[0],
        )

    def channel_multiple_choice(self) -> tuple[int, str]:
        """The channel multiple the run evolves with, and why in words for the run's start:
        --channel-multiple when given; 1 under a preset (the seed papers' exact widths); the
        device profile's multiple when --bench names a device that has a profile declaring one
        (the board's own channel vector, `devices.profiles.DeviceProfile`); else 8."""
        if self.channel_multiple is not None:
            return self.channel_multiple, "as given (--channel-multiple)"
        if self.preset is not None:
            return 1, f"--preset {self.preset} keeps the seed papers' exact widths"
        profile = self._bench_profile()
        if profile is not None and profile.channel_multiple is not None:
            return profile.channel_multiple, (
                f"the {profile.name} profile ({profile.board}) of --bench {self.bench}; "
                "--channel-multiple N overrides it")
        return DEFAULT_CHANNEL_MULTIPLE, "the default; --channel-multiple N changes it"

    def _bench_profile(self) -> DeviceProfile | None:
        """The device profile of the --bench device; None for an onnxruntime backend, a device
        without a profile, or a name the inventory lacks (`check` says so in its own words)."""
        if self.bench in BENCH_CHOICES:
            return None
        try:
            target = resolve_bench(self.bench)
            return None if isinstance(target, str) else get_profile(target.profile)
        except JetsynthError:
            return None

    def _cost_pressure(self) -> str:
        """'latency' when the bench target has a calibrated latency model (--latency-model FILE,
        or calibration/NAME.json made for this precision and batch), else 'macs'."""
        if self.bench == "none" or self.latency_model == "none":
            return "macs"
        if self.latency_model is not None:
            return "latency"
        from jetsynth.calibration.model import default_path, load_model
        from jetsynth.run.measurement import target_label

        try:
            label = target_label(resolve_bench(self.bench))
            path = default_path(label)
            if not path.is_file():
                return "macs"
            load_model(path).check_matches(label, self.precision, self.bench_batch, str(path))
        except JetsynthError:
            return "macs"
        return "latency"

    def _seed_policies(self) -> EvolveConfig:
        """The seed papers' settings, exactly the defaults before the user-first ones. With
        --target-fps, the closed loop: clusters are whole filters, nearly all of the pressure
        removes clusters (0.9) and every layer loses the same share (balance 0); fps selection;
        adaptive pressure from --keep 0.8; eight screened draws per member. With --max-drop or
        --accuracy-floor (and no target), the pressure adapts to accuracy from a stronger --keep
        0.5. Otherwise seed 001's kernels with balance 0.5 and cluster pressure 0.5, seed 000's
        random mates, fixed pressure at --keep 0.8, on synapses, exact widths; what a paper
        states itself overrides these (`PAPER_SETTINGS`: seed 000's 10 generations and filter
        clusters)."""
        closed = self.target_fps is not None
        floored = self.max_drop is not None or self.accuracy_floor is not None
        paper = PAPER_SETTINGS.get(self.preset, {})
        return replace(
            self,
            generations=(self.generations if self.generations is not None
                         else paper.get("generations", SEED_GENERATIONS)),
            cluster=self.cluster or ("filter" if closed else paper.get("cluster", "kernel")),
            balance=self.balance if self.balance is not None else (0.0 if closed else 0.5),
            cluster_pressure=(self.cluster_pressure if self.cluster_pressure is not None
                              else (0.9 if closed else 0.5)),
            selection=self.selection or ("fps" if closed else "random"),
            pressure=self.pressure or ("adaptive" if closed or floored else "fixed"),
            keep=self.keep if self.keep is not None else (0.5 if floored and not closed else 0.8),
            pressure_on=self.pressure_on or "synapses",
            screen=self.screen if self.screen is not None else (8 if closed else 1),
            channel_multiple=self.channel_multiple if self.channel_multiple is not None else 1,
        )

    def resolved(self) -> EvolveConfig:
        """The same configuration with dataset-dependent defaults filled in, checked."""
        spec = self.data_spec()
        ancestor_epochs, epochs = DEFAULT_EPOCHS.get(spec.kind, FALLBACK_EPOCHS)
        config = replace(
            self.with_policies(),
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
            (self.preset is not None and self.preset not in PRESETS,
             f"--preset must be one of {', '.join(PRESETS)}"),
            (self.channel_multiple < 1, "--channel-multiple must be at least 1 (1: exact widths)"),
            (self.population < 1, "--population must be at least 1"),
            (self.screen < 1, "--screen must be at least 1"),
            (not 0.0 < self.keep <= 1.0, "--keep must lie in (0, 1]"),
            (not 0.0 <= self.balance <= 1.0, "--balance must lie in [0, 1]"),
            (not 0.0 <= self.truncation < 1.0, "--truncation must lie in [0, 1)"),
            (not 0.0 <= self.cluster_pressure <= 1.0, "--cluster-pressure must lie in [0, 1]"),
            ((self.epochs or 0) < 0 or (self.ancestor_epochs or 0) < 0 or self.head_epochs < 0,
             "epochs must be >= 0"),
            (self.batch_size < 1, "--batch-size must be at least 1"),
            (self.lr <= 0, "--lr must be positive"),
            (self.cluster not in CLUSTER_MODES, "--cluster must be kernel or filter"),
            (self.precision not in PRECISIONS, "--precision must be fp32 or fp16"),
            (self.alignment not in ALIGNMENTS, "--alignment must be tag or position"),
            (self.mating not in MATING_FUNCTIONS, "--mating must be sum or product"),
            (self.structure not in STRUCTURES, "--structure must be intersection or union"),
            (self.selection not in POLICIES, f"--selection must be one of {', '.join(POLICIES)}"),
            (self.pressure not in PRESSURES, "--pressure must be fixed or adaptive"),
            (self.pressure_on not in PRESSURE_ON,
             f"--pressure-on must be one of {', '.join(PRESSURE_ON)}"),
            (self.pressure_on == "latency" and self.bench == "none",
             "--pressure-on latency weighs synapses by a calibrated latency model of the bench "
             "target: add --bench DEVICE (and --latency-model FILE, or calibrate it first)"),
            (self.parents < 1, "--parents must be at least 1"),
            (
                self.alphas is not None and len(self.alphas) != self.parents,
                f"give one --alpha per parent ({self.parents}), or none for equal weights",
            ),
            (
                self.alphas is not None and (min(self.alphas) < 0 or sum(self.alphas) <= 0),
                "--alpha weights must be 0 or more and not all 0",
            ),
            (
                self.alphas is not None and max(self.alphas) > MAX_ALPHA,
                f"--alpha weights are relative: give each at most {MAX_ALPHA:g}",
            ),
            (
                not 0.0 <= self.overlap_band[0] <= self.overlap_band[1] <= 1.0,
                "--overlap-band LOW HIGH must satisfy 0 <= LOW <= HIGH <= 1",
            ),
            (self.executor not in EXECUTORS, "--executor must be local or ray"),
            (not 1 <= self.cpus_per_member <= MAX_THREADS,
             f"--cpus-per-member must be between 1 and {MAX_THREADS}"),
            (self.gpus_per_member < 0, "--gpus-per-member must be 0 or more (0.5: two members per GPU)"),
            (self.bench_batch < 1, "--bench-batch must be at least 1"),
            (self.bench_seconds <= 0, "--bench-seconds must be positive"),
            (self.target_fps is not None and self.target_fps <= 0, "--target-fps must be positive"),
            (
                self.target_fps is not None and self.bench == "none",
                "--target-fps needs measured speed: add --bench ort or --bench DEVICE",
            ),
            (self.measure_every < 1, "--measure-every must be at least 1"),
            (
                self.bench == "none" and (self.selection == "fps" or self.measure_every > 1
                                          or self.latency_model is not None),
                "--selection fps, --measure-every and --latency-model need speed: add --bench ort or "
                "--bench DEVICE",
            ),
            (
                self.max_drop is not None and self.accuracy_floor is not None,
                "give --max-drop (relative to the ancestor) or --accuracy-floor (absolute), not both",
            ),
            (
                self.max_drop is not None and not 0.0 <= self.max_drop < 1.0,
                "--max-drop is a fraction in [0, 1) (0.01 for one point)",
            ),
            (self.patience is not None and self.patience < 1, "--patience must be at least 1"),
            (self.threads < 0, "--threads must be 0 (torch's default) or more"),
            (self.amp not in (None, *AMP_CHOICES), f"--amp must be one of {', '.join(AMP_CHOICES)}"),
            (self.grow_on_drop is not None and not 0.0 <= self.grow_on_drop < 1.0,
             "--grow-on-drop must be a fraction in [0, 1), e.g. 0.01 for one point"),
            (
                self.accuracy_floor is not None and not 0.0 <= self.accuracy_floor <= 1.0,
                "--accuracy-floor is a fraction in [0, 1] (0.985 for 98.5 %)",
            ),
        ]
        not_finite = list(dict.fromkeys(name for name, value in self._numbers() if not math.isfinite(value)))
        if not_finite:
            raise JetsynthError(f"{', '.join(not_finite)} must be finite numbers (not NaN or infinity)")
        for failed, message in problems:
            if failed:
                raise JetsynthError(message)
        self.bench_targets()

    def _numbers(self):
        """(option, value) for every number in the configuration, tuples item by item."""
        for f in fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            for item in values:
                if isinstance(item, (int, float)) and not isinstance(item, bool):
                    yield "--" + f.name.replace("_", "-"), item

    def timing_seconds(self) -> float:
        """The least time (s) the run spends timing members when it runs every generation: each
        timed member (every --measure-every-th, and the ancestor) takes TRIALS trials of
        --bench-seconds; 0 without --bench. Without --generations, its default cap counts."""
        if self.bench == "none":
            return 0.0
        generations = self.generations if self.generations is not None else \
            self.with_policies().generations
        members = 1 + (generations - 1) * self.population
        timed = 1 + (members - 1) // self.measure_every
        return timed * TRIALS * self.bench_seconds

    def synthesis(self, parents: int, keep: float | None = None,
                  layer_costs: dict[str, float] | None = None) -> SynthesisConfig:
        """Synthesis settings for an offspring of `parents` parents (fewer than --parents when
        the previous generation is smaller, e.g. the ancestor alone); `keep` overrides --keep
        (the adaptive pressure's share for this generation); `layer_costs`: the cost of one
        synapse per layer for --pressure-on latency (`pressure_costs.latency_costs`)."""
        alphas = self.alphas if self.alphas is not None and len(self.alphas) == parents else None
        if self.alphas is not None and alphas is None:
            alphas = tuple(a / sum(self.alphas[:parents]) for a in self.alphas[:parents])
        return SynthesisConfig(
            cluster=self.cluster,
            keep=self.keep if keep is None else keep,
            balance=self.balance,
            truncation=self.truncation,
            cluster_pressure=self.cluster_pressure,
            mating=self.mating,
            structure=self.structure,
            alignment=self.alignment,
            alphas=alphas,
            mates=self.mates,
            pressure_on=self.pressure_on,
            layer_costs=tuple(sorted(layer_costs.items())) if layer_costs else None,
            channel_multiple=self.channel_multiple or 1,
        )

    @property
    def mates(self) -> int:
        """Seed 000's m as the intersection sees it: how many parents an offspring of a full
        generation has, --parents but never more than the population it is drawn from."""
        return min(self.parents, self.population)

    def selection_config(self, floor: float = 0.0) -> SelectionConfig:
        """Parent selection; `floor` is the accuracy the fps policy asks members to keep."""
        return SelectionConfig(policy=self.selection, band=tuple(self.overlap_band), floor=floor)

    def training(self, ancestor: bool) -> TrainConfig:
        return TrainConfig(
            epochs=self.ancestor_epochs if ancestor else self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            precision=self.precision,
            device="cuda:0" if self.device == "cuda" else "cpu" if self.device == "auto" else self.device,
            amp=self.amp or "auto",
        )

    def bench_target(self) -> BenchTarget | None:
        """Where each member is timed (see `resolve_bench`); None when not measured."""
        return None if self.bench == "none" else resolve_bench(self.bench)

    def bench_targets(self) -> list[BenchTarget]:
        """Every target that times members: `bench_target()` then the pool's other devices,
        checked to be one kind of board (see `devices.pool.one_kind`); [] when not measured."""
        from jetsynth.devices.pool import one_kind

        names = [self.bench, *self.bench_pool]
        if names == ["none"]:
            return []
        if "none" in names:
            raise JetsynthError("--bench none times nothing: leave it out of a list of devices")
        return one_kind([resolve_bench(name) for name in names], names)

    def floor(self, ancestor_accuracy: float) -> float:
        """The accuracy a member must keep, on validation (callers pass and compare
        `selection.selection_accuracy`): --accuracy-floor, else --max-drop (default one point)
        under the ancestor's."""
        if self.accuracy_floor is not None:
            return self.accuracy_floor
        return ancestor_accuracy - (self.max_drop if self.max_drop is not None else 0.01)

    def data_spec(self) -> DataSpec:
        return DataSpec.parse(self.data, self.subset, self.seed, self.val_split, self.input_size,
                              self.mean, self.std, self.augment)
