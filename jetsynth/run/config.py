"""Everything that determines an evolution run, checked in one place."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from jetsynth.core.selection import SelectionConfig
from jetsynth.core.synthesis import SynthesisConfig
from jetsynth.core.trials import TRIALS
from jetsynth.data.dataset import DataSpec
from jetsynth.devices.inventory import BenchTarget
from jetsynth.devices.profiles import DeviceProfile, get_profile
from jetsynth.errors import JetsynthError
from jetsynth.run.policies import DEFAULT_CHANNEL_MULTIPLE, DEFAULT_MAX_DROP, with_policy
from jetsynth.run.settings import (
    SECTION_OF,
    SECTION_TYPES,
    DataSettings,
    EvolutionSettings,
    ModelSettings,
    Problem,
    ScaleSettings,
    TimingSettings,
    TrainingSettings,
    setting_fields,
)
from jetsynth.run.train import TrainConfig

BENCH_CHOICES = ("none", "ort", "ort-cpu", "ort-cuda", "ort-trt")
PLACEMENT = ("executor", "ray_address", "cpus_per_member", "gpus_per_member", "bench_pool",
             "device", "amp")
"""Settings that say where members train or which boards of the bench's kind time them, not what
they become: a run may resume under others."""
DEFAULT_EPOCHS = {"digits": (20, 5)}
"""(ancestor epochs, offspring epochs) by dataset kind, where not given."""
FALLBACK_EPOCHS = (5, 2)


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


@dataclass(frozen=True, init=False)
class EvolveConfig:
    """Everything that determines a run, in the sections of `run/settings.py`.

    Built from flat settings, `EvolveConfig(generations=8, max_drop=0.01)`, or from sections
    (`dataset=DataSettings(...)`), flat settings then overriding the sections' values; each
    setting reads flat too (`config.generations` is `config.evolution.generations`): the whole
    package reads settings by name, wherever they are grouped."""

    dataset: DataSettings
    model: ModelSettings
    evolution: EvolutionSettings
    training: TrainingSettings
    timing: TimingSettings
    scale_out: ScaleSettings

    def __init__(self, dataset: DataSettings | None = None, model: ModelSettings | None = None,
                 evolution: EvolutionSettings | None = None,
                 training: TrainingSettings | None = None, timing: TimingSettings | None = None,
                 scale_out: ScaleSettings | None = None, **settings: Any) -> None:
        unknown = sorted(set(settings) - set(SECTION_OF))
        if unknown:
            raise TypeError(f"EvolveConfig has no setting {', '.join(unknown)}")
        given = {"dataset": dataset, "model": model, "evolution": evolution, "training": training,
                 "timing": timing, "scale_out": scale_out}
        for attribute, kind in SECTION_TYPES.items():
            section = given[attribute] if given[attribute] is not None else kind()
            own = {name: value for name, value in settings.items() if SECTION_OF[name] == attribute}
            object.__setattr__(self, attribute, replace(section, **own) if own else section)

    @classmethod
    def from_flat(cls, settings: Mapping[str, Any]) -> EvolveConfig:
        """From {setting: value} (lists become the tuples the settings hold)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})

    def flat(self) -> dict[str, Any]:
        """{setting: value} for every setting, section by section."""
        return {f.name: getattr(getattr(self, SECTION_OF[f.name]), f.name)
                for f in setting_fields()}

    def nested(self) -> dict[str, dict[str, Any]]:
        """{section attribute: {setting: value}}: how config.json stores the settings."""
        return {attribute: asdict(getattr(self, attribute)) for attribute in SECTION_TYPES}

    def with_policies(self) -> EvolveConfig:
        """The settings the user left open filled in by the run's policy (run/policies.py); the
        channel multiple by `channel_multiple_choice`, which knows the --bench device's profile."""
        evolution = self.evolution
        if evolution.channel_multiple is None:
            evolution = replace(evolution, channel_multiple=self.channel_multiple_choice()[0])
        evolution = with_policy(evolution, self.target_fps, self.data.partition(":")[0],
                                self._cost_pressure() if self.pressure_on is None else "macs")
        return replace(self, evolution=evolution)

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
        """Raise JetsynthError on the first problem, naming the settings it is about."""
        for problem in self.problems():
            raise JetsynthError(problem.message, setting=problem.settings)
        self.bench_targets()

    def problems(self) -> Iterator[Problem]:
        """Every section's own problems, then those between sections; the policies are filled in
        (`resolved`) before a check, so settings left open are not problems."""
        for attribute in SECTION_TYPES:
            yield from getattr(self, attribute).problems()
        if self.bench == "none" and self.selection == "fps":
            yield Problem(("selection", "bench"),
                          "`selection` fps needs speed: add `bench` ort or `bench` DEVICE")
        if self.pressure_on == "latency" and self.bench == "none":
            yield Problem(("pressure_on", "bench", "latency_model"),
                          "`pressure_on` latency weighs synapses by a calibrated latency model "
                          "of the bench target: add `bench` DEVICE (and `latency_model` FILE, or "
                          "calibrate it first)")

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

    def train_config(self, ancestor: bool) -> TrainConfig:
        """How the ancestor (`ancestor`) or an offspring trains."""
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
            raise JetsynthError("`bench` none times nothing: leave it out of a list of devices",
                                setting="bench")
        return one_kind([resolve_bench(name) for name in names], names)

    def floor(self, ancestor_accuracy: float) -> float:
        """The accuracy a member must keep, on validation (callers pass and compare
        `selection.selection_accuracy`): --accuracy-floor, else --max-drop (default one point)
        under the ancestor's."""
        if self.accuracy_floor is not None:
            return self.accuracy_floor
        return ancestor_accuracy - (self.max_drop if self.max_drop is not None else DEFAULT_MAX_DROP)

    def data_spec(self) -> DataSpec:
        return DataSpec.parse(self.data, self.subset, self.seed, self.val_split, self.input_size,
                              self.mean, self.std, self.augment)


def _flat_reader(name: str, attribute: str) -> property:
    return property(lambda self: getattr(getattr(self, attribute), name),
                    doc=f"`{attribute}.{name}`, read flat.")


for _name, _attribute in SECTION_OF.items():
    setattr(EvolveConfig, _name, _flat_reader(_name, _attribute))
