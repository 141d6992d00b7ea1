"""The Python API: evolve a network from your model and data in one call, read the run back as
typed members, and ship one, with the same machinery, files and choices as the `jetsynth`
commands (a run made here is a run directory `jetsynth report` and `jetsynth export` read).

    run = jetsynth.evolve(my_factory, "digits", generations=3, run_dir="runs/a")
    best = run.best()            # the member `jetsynth evolve`'s last line ships
    net = best.model()           # the compacted nn.Module
    best.export("model.onnx")    # as `jetsynth export`

A model or dataset given as an object stays an object: it is used as it is and never turned into
a name to import. The run records a description of it (`<python:module.name>`, `python:TYPE`),
so reopening such a run takes the object again: `open_run(dir, arch=my_factory)`.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, fields, replace
from pathlib import Path

from torch import nn

from jetsynth.core.records import MemberRecord
from jetsynth.core.selection import pick_member, selection_accuracy
from jetsynth.data.dataset import IN_PROCESS as IN_PROCESS_DATA
from jetsynth.data.dataset import Dataset
from jetsynth.errors import JetsynthError
from jetsynth.nn.models import IN_PROCESS as IN_PROCESS_ARCH
from jetsynth.nn.models import Factory, canonical_arch, in_process_arch, stored_factories
from jetsynth.run.config import EvolveConfig
from jetsynth.run.evolve import Observer
from jetsynth.run.rundir import RunDirectory, fits_annotation, grown_pick
from jetsynth.ship.export import DEFAULT_OPSET, ExportResult

Arch = str | Factory | type[nn.Module]
"""A built-in name or `module:function` / `file.py:function` (as `--arch`), a function
`(input_shape, num_classes) -> nn.Module`, or an nn.Module class called the same way."""

_PLACED = ("arch", "data")


@dataclass(frozen=True)
class ProgressEvent:
    """What the run is doing, for a `progress` callback. `kind` is one of: 'run_started'
    (`done` of `total` members already finished), 'member_started', 'step' (`done` of `total`
    optimiser steps of `member`), 'member_timing' (the member is being timed), 'member_finished'
    (`record` holds its result), 'notice' (`text`: a remark the user should see)."""

    kind: str
    member: str | None = None
    done: int = 0
    total: int = 0
    record: MemberRecord | None = None
    text: str | None = None


class _Callback(Observer):
    """The run's observer hooks as ProgressEvents for the caller's function."""

    def __init__(self, callback: Callable[[ProgressEvent], object]):
        self.callback = callback
        self.member: str | None = None

    def run_started(self, run_dir: Path, done: int, total: int) -> None:
        self.callback(ProgressEvent("run_started", done=done, total=total))

    def member_started(self, member_id: str) -> None:
        self.member = member_id
        self.callback(ProgressEvent("member_started", member=member_id))

    def step(self, done: int, total: int) -> None:
        self.callback(ProgressEvent("step", member=self.member, done=done, total=total))

    def member_timing(self, member_id: str) -> None:
        self.callback(ProgressEvent("member_timing", member=member_id))

    def member_finished(self, record: MemberRecord) -> None:
        self.callback(ProgressEvent("member_finished", member=record.id, record=record))

    def notice(self, text: str) -> None:
        self.callback(ProgressEvent("notice", text=text))


def _display(progress):
    """The observer, as a context: a function gets ProgressEvents; None the command line's own
    display (live bars on a terminal or in a notebook, plain lines otherwise, on stderr); False
    nothing."""
    if progress is None:
        from rich.console import Console

        from jetsynth.cli.progress import RichObserver, run_observer

        notebook = Console()
        return RichObserver(notebook) if notebook.is_jupyter else run_observer()
    if progress is False:
        return nullcontext(Observer())
    if callable(progress):
        return nullcontext(_Callback(progress))
    raise JetsynthError(f"progress must be a function of one ProgressEvent, None (bars) or "
                        f"False (quiet), not {type(progress).__name__}")


@dataclass(frozen=True, eq=False)
class Member:
    """One finished member of a run: its typed `record` and the ways to use it."""

    record: MemberRecord
    run: Run

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def generation(self) -> int:
        """Its generation; the ancestor is generation 1."""
        return self.record.generation

    @property
    def index(self) -> int:
        """Its place within its generation, from 0."""
        return self.record.member

    @property
    def val_accuracy(self) -> float | None:
        """Accuracy on the validation split (a fraction), which every choice is made on; None
        for a run without one."""
        return self.record.val_accuracy

    @property
    def accuracy(self) -> float:
        """Accuracy on the test split (a fraction): reported, never chosen on."""
        return self.record.accuracy

    @property
    def macs(self) -> int:
        """Multiply-accumulates per image."""
        return self.record.macs

    @property
    def fps(self) -> float | None:
        """Measured images per second (runs with `bench`), else None."""
        return self.record.fps

    def genome(self):
        """Its genome (architecture, masks, weights), as `jetsynth` stores it."""
        return self.run._directory().genome(self.id)

    def model(self, channel_multiple: int = 1) -> nn.Module:
        """The member as a plain nn.Module in eval mode, dead units removed (each layer keeps a
        multiple of `channel_multiple` channels, zero-padded)."""
        from jetsynth.ship.export import compact_genome

        return compact_genome(self.genome(), channel_multiple).model

    def export(self, path: str | Path, precision: str = "fp16", channel_multiple: int | None = None,
               io_precision: str = "fp32", opset: int = DEFAULT_OPSET, parity: bool = True,
               finetune_epochs: int = 0) -> ExportResult:
        """Write the member to the ONNX file `path`, as `jetsynth export RUN -g G -m M` does
        with the same options (defaults included); `parity` compares onnxruntime's outputs
        with torch's on the run's test split. `channel_multiple` None: the run's own, whose
        widths evolution kept (the file `--bench` timed)."""
        from jetsynth.run.export_run import export_member

        dataset = self.run._dataset
        if (dataset is None and (parity or finetune_epochs)
                and self.run.config.data.startswith(IN_PROCESS_DATA + ":")):
            raise JetsynthError(f"{self.run.dir} was evolved on a Python dataset, needed here for "
                                "the parity check or fine-tuning: give it again, "
                                "jetsynth.open_run(dir, data=...), or export with parity=False")
        result, _ = export_member(self.run.dir, Path(path), self.generation, self.index,
                                  precision=precision, io_precision=io_precision, opset=opset,
                                  check_parity=parity, finetune_epochs=finetune_epochs,
                                  channel_multiple=channel_multiple,
                                  factories=self.run._factories, dataset=dataset)
        return result

    def __repr__(self) -> str:
        val = "n/a" if self.val_accuracy is None else f"{self.val_accuracy:.4f}"
        fps = "" if self.fps is None else f", fps={self.fps:,.0f}"
        return (f"Member({self.id}, val_accuracy={val}, accuracy={self.accuracy:.4f}, "
                f"macs={self.macs:,}{fps})")


class Run:
    """A run directory and its finished members, read afresh on every access (a run that is
    still being written by another process shows what has finished)."""

    def __init__(self, directory: str | Path, factories: dict[str, Factory],
                 dataset: Dataset | None = None):
        self.dir = Path(directory)
        self._factories = factories
        self._dataset = dataset

    def _directory(self) -> RunDirectory:
        return RunDirectory(self.dir, self._factories)

    @property
    def config(self) -> EvolveConfig:
        """The run's settings as recorded, with the policies it ran under filled in."""
        return self._directory().stored_config().with_policies()

    @property
    def members(self) -> list[Member]:
        """Every finished member, ancestor first, by generation and place."""
        records = sorted(self._directory().records(), key=lambda r: (r.generation, r.member))
        return [Member(record, self) for record in records]

    def generation(self, number: int) -> list[Member]:
        """The finished members of generation `number` (the ancestor is generation 1)."""
        members = [m for m in self.members if m.generation == number]
        if not members:
            found = sorted({m.generation for m in self.members})
            have = f"generations {found[0]} to {found[-1]}" if found else "no finished member"
            raise JetsynthError(f"{self.dir} has no finished member in generation {number} "
                                f"({have})")
        return members

    def best(self, floor: float | None = None) -> Member:
        """The member to ship, as `jetsynth evolve`'s last line names it: among the members
        whose validation accuracy keeps `floor` (default: the run's own floor, from `max_drop`
        or `accuracy_floor`), the fastest measured, else the fewest multiply-accumulates; the
        ancestor when none keeps it. A `jetsynth grow` run ships its best on validation."""
        members = self.members
        if not members:
            raise JetsynthError(f"{self.dir} holds no finished member yet")
        records = [m.record for m in members]
        chosen = grown_pick(self.dir, records) if floor is None else None
        if chosen is None:
            if floor is None:
                floor = self.config.floor(selection_accuracy(records[0]))
            chosen = pick_member(records, floor=floor)
        return next(m for m in members if m.id == chosen.id)

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, {len(self.members)} members)"


def evolve(arch: Arch, data=None, *, run_dir: str | Path | None = None, resume: bool = False,
           progress: Callable[[ProgressEvent], object] | bool | None = None, **settings) -> Run:
    """Evolve smaller networks from `arch` on `data` and return the run.

    `arch`: see `Arch`. `data`: a spec string as `--data` takes ('digits', 'folder:DIR', ...;
    default 'digits', or a resumed run's own) or a dataset object of (image, label) items (see
    `data.items`).
    `settings`: any field of EvolveConfig by name (`generations=8`, `max_drop=0.01`, ...), as
    the `jetsynth evolve` options of the same names. `run_dir` (default runs/evolve-TIME) must
    be new or empty, unless `resume` continues the run there with the settings it has (those
    given override, as flags do). `progress`: see `ProgressEvent`; None shows bars, False
    nothing."""
    if isinstance(arch, EvolveConfig):
        raise JetsynthError("jetsynth.evolve takes (arch, data, **settings); the loop over an "
                            "EvolveConfig is jetsynth.run.evolve.evolve(config, run_dir)")
    settings = _checked(settings)
    name, factory = _architecture(arch)
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / time.strftime(
        "evolve-%Y%m%d-%H%M%S")
    stored = RunDirectory(run_dir).stored_config() if resume else None
    if data is None:
        data = stored.data if stored is not None else "digits"
    data_name = data if isinstance(data, str) else f"{IN_PROCESS_DATA}:{type(data).__qualname__}"
    base = {f.name: getattr(stored, f.name) for f in fields(EvolveConfig)} if stored else {}
    config = EvolveConfig(**{**base, **settings, "arch": name, "data": data_name})
    resolved = config.resolved()
    if factory is not None and resolved.executor == "ray":
        raise JetsynthError("a model given as a Python object cannot travel to Ray workers: "
                            "give arch as 'module:function' or 'file.py:function'")
    dataset = None
    if not isinstance(data, str):
        dataset = _adapted(data, resolved)
        config = replace(config, data=dataset.name)
    from jetsynth.run.evolve import evolve as run_evolution

    with _display(progress) as observer:
        run_evolution(config, run_dir, resume=resume, observer=observer, trust_code=True,
                      factory=factory, dataset=dataset)
    factories = {name: factory} if factory is not None else _named(name, run_dir)
    return Run(run_dir, factories, dataset)


def open_run(directory: str | Path, arch: Arch | None = None, data=None) -> Run:
    """The run in `directory`. `arch`: the model the run was evolved from, needed when that
    was a Python object or user code (`module:function`, `file.py:function`, which jetsynth
    imports only on your word). `data`: the dataset object a run evolved on a Python dataset
    used, for exporting with a parity check; spec-string data is loaded from its spec."""
    directory = Path(directory)
    config = RunDirectory(directory).stored_config()
    if config is None:
        raise JetsynthError(f"{directory} is not a jetsynth run directory (no config.json)")
    recorded = config.arch
    if arch is None:
        if recorded.startswith(IN_PROCESS_ARCH):
            raise JetsynthError(f"{directory} was evolved from the Python callable {recorded}: "
                                f"give it again, jetsynth.open_run({str(directory)!r}, arch=...)")
        factories = stored_factories(recorded, None, False, str(directory))
    elif isinstance(arch, str):
        factories = stored_factories(recorded, arch, False, str(directory))
    else:
        factories = {recorded: _architecture(arch)[1]}
    dataset = None
    if data is not None:
        if not config.data.startswith(IN_PROCESS_DATA + ":"):
            raise JetsynthError(f"{directory} was evolved on {config.data}, which jetsynth loads "
                                "itself: leave data out")
        dataset = _adapted(data, config)
        if dataset.name != config.data:
            raise JetsynthError(f"{directory} was evolved on {config.data}; this data is "
                                f"{dataset.name}, other images or labels (the part after @ "
                                "fingerprints them)")
    return Run(directory, factories, dataset)


def _checked(settings: dict) -> dict:
    """The settings, each checked to name a field of EvolveConfig and to have a value of its
    type (lists become the tuples the config holds)."""
    known = {f.name: f.type for f in fields(EvolveConfig) if f.name not in _PLACED}
    unknown = [name for name in settings if name not in known]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.7)
            hints.append(f"'{name}'" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise JetsynthError(f"unknown setting{'s' if len(unknown) > 1 else ''} {'; '.join(hints)}; "
                            "the settings are EvolveConfig's fields")
    checked = {}
    for name, value in settings.items():
        if isinstance(value, (list, tuple)):
            value = list(value)
        if not fits_annotation(value, known[name]):
            raise JetsynthError(f"setting {name}={value!r} is not of type {known[name]}")
        checked[name] = tuple(value) if isinstance(value, list) else value
    return checked


def _architecture(arch: Arch) -> tuple[str, Factory | None]:
    """(recorded name, factory object or None for a name resolved by the run)."""
    if isinstance(arch, str):
        return canonical_arch(arch), None
    if isinstance(arch, nn.Module):
        raise JetsynthError("arch is a model instance: give the function or nn.Module class "
                            "that builds it, called as (input_shape, num_classes); jetsynth "
                            "builds the model for the data's shape itself")
    if callable(arch):
        return in_process_arch(arch), arch
    raise JetsynthError(f"arch must be a name such as 'lenet5', a function (input_shape, "
                        f"num_classes) -> nn.Module or an nn.Module class, not "
                        f"{type(arch).__name__}")


def _named(name: str, run_dir: Path) -> dict[str, Factory]:
    """The factory of an architecture the caller named (their word: user code is imported)."""
    return stored_factories(name, name, True, str(run_dir))


def _adapted(data, config: EvolveConfig) -> Dataset:
    """A dataset object as the data layer's record, split and prepared as `config` says."""
    from jetsynth.data.items import items_dataset

    names = getattr(data, "classes", None)
    names = list(names) if isinstance(names, (list, tuple)) and all(
        isinstance(n, str) for n in names) else None
    return items_dataset(data, config.data_spec(), names)
