"""The settings of an evolution run, one dataclass per part of the run (data, model, evolution,
training, timing, scale-out), each field declared once with its default and what it accepts: a
range (`bounds`) or a list of names (`choices`). `EvolveConfig` (run/config.py) composes them;
`evolve --help` lists the options, and a `--config` file groups them, in these sections.

A default of None means "decided by the run's policy" (run/policies.py) or, for the dataset's own
values, by the data; every other default is the value used."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from jetsynth.core.genome import PRECISIONS
from jetsynth.core.mating import ALIGNMENTS, MATING_FUNCTIONS, STRUCTURES
from jetsynth.core.pressure_costs import PRESSURE_ON
from jetsynth.core.selection import POLICIES
from jetsynth.data.dataset import VAL_SPLIT
from jetsynth.nn.device import AMP_CHOICES
from jetsynth.nn.structure import CLUSTER_MODES
from jetsynth.run.bounds import (
    ALPHA,
    BATCH,
    COUNT,
    CPUS,
    EPOCHS,
    FRACTION,
    IMAGE_SIZE,
    LEARNING_RATE,
    POSITIVE,
    SECONDS,
    SEED,
    SUBSET,
    THREADS,
    TRAIN_BATCH,
    Bounds,
)

PRESETS = ("seed000", "seed001", "seed002", "seed004")
"""`preset`: the seed papers' settings, exactly the defaults of every run before the user-first
defaults (fixed pressure on synapses, kernel clusters, exact widths, 6 generations)."""
PRESSURES = ("fixed", "adaptive")
EXECUTORS = ("local", "ray")
FRACTION_BELOW_ONE = Bounds(float, 0, 1, high_open=True)
SHARE = Bounds(float, 0, 1, low_open=True)
"""A share in (0, 1]: none of something is not a share to keep."""
GPUS = Bounds(float, 0, 1024)
"""GPUs reserved per member: 0.5 lets two members share one."""


def setting(default: Any, bounds: Bounds | tuple[Bounds, ...] | None = None,
            choices: tuple[str, ...] | None = None) -> Any:
    """A settings field: its default, and the range (`bounds`; a tuple: one range per item of a
    fixed-length value; a range for a variable-length tuple holds for each item) or the names
    (`choices`) it accepts."""
    return field(default=default, metadata={"bounds": bounds, "choices": choices})


def bounds_of(f) -> Bounds | tuple[Bounds, ...] | None:
    return f.metadata.get("bounds")


def choices_of(f) -> tuple[str, ...] | None:
    return f.metadata.get("choices")


@dataclass(frozen=True)
class Problem:
    """A setting's value that the run cannot use: `message` names the settings (`settings`) by
    their names in EvolveConfig, which the command line shows as its flags."""

    settings: tuple[str, ...]
    message: str


class Section:
    """What every settings section shares: its title in `--help` and `--config` files, and the
    check of each field against its declared range or names."""

    TITLE: ClassVar[str]

    def problems(self) -> Iterator[Problem]:
        """Every field outside what it accepts; subclasses add the rules between their fields."""
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                continue
            problem = _field_problem(f.name, value, bounds_of(f), choices_of(f))
            if problem is not None:
                yield problem


def _field_problem(name: str, value: Any, bounds: Bounds | tuple[Bounds, ...] | None,
                   choices: tuple[str, ...] | None) -> Problem | None:
    if choices is not None and value not in choices:
        return Problem((name,), f"`{name}` must be one of {', '.join(choices)}")
    if isinstance(bounds, Bounds):
        for item in value if isinstance(value, tuple) else (value,):
            if not bounds.contains(item):
                return Problem((name,), f"`{name}` must be {bounds.wanted()}, got {item!r}")
    elif bounds is not None:
        inside = len(value) == len(bounds) and all(b.contains(v) for b, v in zip(bounds, value,
                                                                                  strict=True))
        if not inside:
            wanted = " and ".join(b.wanted() for b in bounds)
            return Problem((name,), f"`{name}` must be {len(bounds)} numbers: {wanted}, got {value!r}")
    if choices is None and bounds is None:
        numbers = value if isinstance(value, tuple) else (value,)
        if any(isinstance(n, float) and not math.isfinite(n) for n in numbers):
            return Problem((name,), f"`{name}` must be finite numbers (not NaN or infinity)")
    return None


@dataclass(frozen=True)
class DataSettings(Section):
    """Which images, how many of them, and how they are prepared."""

    TITLE: ClassVar[str] = "Data"
    data: str = "digits"
    subset: float = setting(1.0, SUBSET)
    val_split: float = setting(VAL_SPLIT, FRACTION_BELOW_ONE)
    input_size: int | None = setting(None, IMAGE_SIZE)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: bool = False


@dataclass(frozen=True)
class ModelSettings(Section):
    """The ancestor: its architecture, where its weights come from and how long it trains."""

    TITLE: ClassVar[str] = "Model"
    arch: str = "lenet5"
    ancestor_weights: str | None = None
    head_epochs: int = setting(1, EPOCHS)
    """`ancestor_weights` whose head is replaced (other classes): epochs of the new head alone,
    before the ancestor's epochs."""
    ancestor_epochs: int | None = setting(None, EPOCHS)
    """None: the dataset's default (`config.DEFAULT_EPOCHS`)."""


@dataclass(frozen=True)
class EvolutionSettings(Section):
    """How offspring are synthesised and selected, and when the run stops. `generations` counts
    the ancestor as generation 1 (seed 001's numbering); the None defaults are the policy's."""

    TITLE: ClassVar[str] = "Evolution"
    preset: str | None = setting(None, choices=PRESETS)
    """A seed paper's settings (`PRESETS`); None: shrink until the floor (run/policies.py)."""
    channel_multiple: int | None = setting(None, COUNT)
    """Every channel space keeps a multiple of this many live channels."""
    generations: int | None = setting(None, COUNT)
    population: int = setting(1, COUNT)
    screen: int | None = setting(None, COUNT)
    """Offspring drawn per member; the one whose inherited weights lose least on a slice of the
    training split is trained (`run.train.inherited_loss`). 1: seed 001's single draw."""
    parents: int = setting(1, COUNT)
    cluster: str | None = setting(None, choices=CLUSTER_MODES)
    keep: float | None = setting(None, SHARE)
    balance: float | None = setting(None, FRACTION)
    pressure_on: str | None = setting(None, choices=PRESSURE_ON)
    truncation: float = setting(0.1, FRACTION_BELOW_ONE)
    cluster_pressure: float | None = setting(None, FRACTION)
    pressure: str | None = setting(None, choices=PRESSURES)
    max_drop: float | None = setting(None, FRACTION_BELOW_ONE)
    accuracy_floor: float | None = setting(None, FRACTION)
    patience: int | None = setting(None, COUNT)
    grow_on_drop: float | None = setting(None, FRACTION_BELOW_ONE)
    alignment: str = setting("tag", choices=ALIGNMENTS)
    mating: str = setting("sum", choices=MATING_FUNCTIONS)
    structure: str = setting("intersection", choices=STRUCTURES)
    alphas: tuple[float, ...] | None = setting(None, ALPHA)
    selection: str | None = setting(None, choices=POLICIES)
    overlap_band: tuple[float, float] = setting((0.5, 0.9), (FRACTION, FRACTION))
    reinit: bool = False
    seed: int = setting(0, SEED)

    def problems(self) -> Iterator[Problem]:
        yield from super().problems()
        if self.max_drop is not None and self.accuracy_floor is not None:
            yield Problem(("max_drop", "accuracy_floor"),
                          "give `max_drop` (relative to the ancestor) or `accuracy_floor` (absolute), "
                          "not both")
        if self.alphas is not None and len(self.alphas) != self.parents:
            yield Problem(("alphas", "parents"),
                          f"give one `alphas` per parent ({self.parents}), or none for equal weights")
        if self.alphas is not None and sum(self.alphas) <= 0:
            yield Problem(("alphas",), "`alphas` weights must be 0 or more and not all 0")
        if self.overlap_band[0] > self.overlap_band[1]:
            yield Problem(("overlap_band",), "`overlap_band` LOW HIGH must satisfy 0 <= LOW <= HIGH <= 1")


@dataclass(frozen=True)
class TrainingSettings(Section):
    """How each offspring trains, and on what."""

    TITLE: ClassVar[str] = "Training"
    epochs: int | None = setting(None, EPOCHS)
    """None: the dataset's default (`config.DEFAULT_EPOCHS`)."""
    batch_size: int = setting(128, TRAIN_BATCH)
    lr: float = setting(1e-3, LEARNING_RATE)
    precision: str = setting("fp32", choices=PRECISIONS)
    device: str = "auto"
    """auto | cpu | cuda | cuda:N, resolved on the machine that runs (or resumes) the run; each
    member's record says which device trained it."""
    amp: str | None = setting(None, choices=AMP_CHOICES)
    """bf16 | fp16 | off; None: bf16 (fp16 where the GPU lacks it) on a GPU, off on the CPU."""
    threads: int = setting(1, THREADS)
    """torch's intra-op threads while training (0: torch's own default, one per core). How the
    run computes, not what: a resumed run may change it."""


@dataclass(frozen=True)
class TimingSettings(Section):
    """Whether and where members are timed, and what the speed is for."""

    TITLE: ClassVar[str] = "Timing"
    bench: str = "none"
    bench_pool: tuple[str, ...] = ()
    """Further devices beside `bench` (the first --bench), boards of its kind that time members
    in parallel; measurements are keyed and calibrated under `bench`'s name."""
    bench_batch: int = setting(1, BATCH)
    bench_seconds: float = setting(0.5, SECONDS)
    target_fps: float | None = setting(None, POSITIVE)
    measure_every: int = setting(1, COUNT)
    latency_model: str | None = None

    def problems(self) -> Iterator[Problem]:
        yield from super().problems()
        if self.target_fps is not None and self.bench == "none":
            yield Problem(("target_fps", "bench"),
                          "`target_fps` needs measured speed: add `bench` ort or `bench` DEVICE")
        if self.bench == "none" and (self.measure_every > 1 or self.latency_model is not None):
            yield Problem(("measure_every", "latency_model", "bench"),
                          "`measure_every` and `latency_model` need speed: add `bench` ort or "
                          "`bench` DEVICE")


@dataclass(frozen=True)
class ScaleSettings(Section):
    """Where members train: this process, or a Ray cluster and what each member gets there."""

    TITLE: ClassVar[str] = "Scale-out"
    executor: str = "local"
    ray_address: str | None = None
    cpus_per_member: int = setting(1, CPUS)
    gpus_per_member: float = setting(0.0, GPUS)

    def problems(self) -> Iterator[Problem]:
        yield from super().problems()
        if self.executor not in EXECUTORS:  # not a declared choice: its option takes any text
            yield Problem(("executor",), f"`executor` must be {' or '.join(EXECUTORS)}")


SECTION_TYPES: dict[str, type[Section]] = {
    "dataset": DataSettings,
    "model": ModelSettings,
    "evolution": EvolutionSettings,
    "training": TrainingSettings,
    "timing": TimingSettings,
    "scale_out": ScaleSettings,
}
"""EvolveConfig's attribute → the section it holds, in `--help`'s order (the data section is
`dataset`: `data` is the setting naming the images)."""

SECTION_OF: dict[str, str] = {f.name: attribute for attribute, kind in SECTION_TYPES.items()
                              for f in fields(kind)}  # type: ignore[arg-type]
"""Each setting's name → the EvolveConfig attribute of its section."""


def setting_fields() -> list:
    """Every setting's dataclass field, section by section in `--help`'s order."""
    return [f for kind in SECTION_TYPES.values() for f in fields(kind)]  # type: ignore[arg-type]
