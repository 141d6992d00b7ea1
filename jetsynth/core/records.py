"""A member's record (`member.json`), typed and checked when read.

A run directory outlives the process that wrote it: files get truncated, edited, copied half-way.
`MemberRecord.from_json` checks every field a reader relies on and names the file on one line
when one is missing or of the wrong type; `to_json` gives back exactly the fields that were
written (the ones this version does not type travel in `extra`), so `report --json` and every
reader of the dict see the documented fields unchanged."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from jetsynth.errors import JetsynthError
from jetsynth.storage import RefusedJSON, read_json


class DamagedRecord(JetsynthError):
    """A record file that does not read or does not validate; the message names the file."""

    def __init__(self, path: Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path} is damaged ({problem}); move it away, or resume the run "
                         "with --resume to train that member again")


_INT = (int,)
_NUMBER = (int, float)

MEMBER_ID = re.compile(r"g(\d{2,6})-m(\d{2,6})")
"""A member's id: generation and index within it, each of at least two digits (g02-m01)."""
SHA256 = re.compile(r"[0-9a-f]{64}")

LAYER_FIELDS = {"name": (str,), "synapses": _INT, "clusters": _INT}
"""What every per-layer entry holds at least (units, kernels and macs travel along when written)."""


def _ordered(values: dict, written: tuple[str, ...]) -> dict:
    """`values` in the order its keys were written (keys not written before go last), so that a
    record read and written back is the same file."""
    rank = {key: i for i, key in enumerate(written)}
    return dict(sorted(values.items(), key=lambda item: rank.get(item[0], len(rank))))


def _typed(cls) -> tuple[str, ...]:
    """The names of a record's typed fields, in order (`extra` and `written` aside)."""
    return tuple(f.name for f in fields(cls) if f.name not in ("extra", "written"))


def _split(cls, data: dict) -> dict:
    """The keyword arguments of record class `cls` for `data`: its typed fields found there,
    the rest in `extra`, and the order of the keys in `written`."""
    typed = _typed(cls)
    return {**{k: data[k] for k in typed if k in data},
            "extra": {k: v for k, v in data.items() if k not in typed}, "written": tuple(data)}


def _present(values: dict, written: tuple[str, ...], optional: tuple[str, ...]) -> dict:
    """`values` without the `optional` keys that are None and were not written."""
    return {k: v for k, v in values.items() if k not in optional or v is not None or k in written}


@dataclass(frozen=True)
class LayerRecord:
    """One layer of a member: its name as in the model and its live counts (synapses, clusters,
    kernels, units; multiply-accumulates per image), `kind` ('conv', 'linear'); what else was
    written travels in `extra`."""

    name: str
    synapses: int
    clusters: int
    kernels: int | None = None
    units: int | None = None
    macs: int | None = None
    kind: str | None = None
    extra: dict = field(default_factory=dict)
    written: tuple[str, ...] = field(default=(), compare=False, repr=False)

    _OPTIONAL = ("kernels", "units", "macs", "kind")

    @classmethod
    def from_json(cls, data: dict) -> LayerRecord:
        return cls(**_split(cls, data))

    def to_json(self) -> dict:
        out = {name: getattr(self, name) for name in _typed(type(self))}
        return _ordered({**_present(out, self.written, self._OPTIONAL), **self.extra}, self.written)


@dataclass(frozen=True)
class Environment:
    """Seed 000's environmental factor for one offspring: R = (1 − r)^m, written as `R` (the
    keep share, a fraction), `r` (the per-parent rate that yields it) and `m` (parents)."""

    m: int
    keep: float
    rate: float

    @classmethod
    def from_json(cls, data: dict) -> Environment:
        return cls(m=data["m"], keep=float(data["R"]), rate=float(data["r"]))

    def to_json(self) -> dict:
        return {"m": self.m, "R": self.keep, "r": self.rate}


@dataclass(frozen=True)
class BenchRecord:
    """How a member's speed was obtained (`evolve --bench`): `source` ('measured', 'cached',
    'predicted', 'failed'), the `backend` that timed it, images per query (`batch`), the
    `precision` exported, the latency model that predicted it (`predictor`, None: none), the
    program that produced the figure (`produced_by`), the latency `features` of its network;
    everything else the timing recorded (trials, latency in ms, drift, power...) in `extra`."""

    source: str | None = None
    backend: str | None = None
    batch: int = 1
    precision: str | None = None
    predictor: str | None = None
    produced_by: str | None = None
    features: tuple[float, ...] | None = None
    extra: dict = field(default_factory=dict)
    written: tuple[str, ...] = field(default=(), compare=False, repr=False)

    _OPTIONAL = ("source", "backend", "precision", "predictor", "produced_by", "features")

    @classmethod
    def from_json(cls, data: dict) -> BenchRecord:
        values = _split(cls, data)
        if values.get("features") is not None:
            values["features"] = tuple(float(v) for v in values["features"])
        return cls(**values)

    def to_json(self) -> dict:
        out = {name: getattr(self, name) for name in _typed(type(self))}
        if self.features is not None:
            out["features"] = list(self.features)
        if "batch" not in self.written and self.written:
            del out["batch"]
        return _ordered({**_present(out, self.written, self._OPTIONAL), **self.extra}, self.written)


@dataclass(frozen=True)
class Speed:
    """A member's speed as evolution records it: `fps` measured images per second (None when it
    was not timed or the device failed), `fps_iqr` the interquartile range of the trials (q1, q3,
    images/s), `fps_predicted` the latency model's figure (None without a model), and `bench`."""

    fps: float | None
    fps_iqr: tuple[float, float] | None
    fps_predicted: float | None
    bench: BenchRecord


@dataclass(frozen=True)
class Finetune:
    """A member trained further at export (`export --finetune-epochs`): the `epochs` added, the
    test accuracy before (a fraction) and the device it trained on."""

    epochs: int
    accuracy_before: float
    device: str

    def to_json(self) -> dict:
        return {"epochs": self.epochs, "accuracy_before": self.accuracy_before,
                "device": self.device}


_OPTIONAL = ("fps_iqr", "fps_predicted", "bench", "environment", "train_seconds", "epochs",
             "device", "amp", "chance_accuracy", "repair", "sha256")
"""MemberRecord fields written only when known (or when the file read had them)."""
_NESTED = {"bench": BenchRecord, "environment": Environment}


@dataclass(frozen=True)
class MemberRecord:
    """One finished member: who it is (id, generation, member, parents, seed), what it scores
    (test `accuracy`, `val_accuracy` or None without a validation split, fractions in [0, 1]),
    its size (counts of synapses, clusters, kernels, units; multiply-accumulates per image) and
    seed 001's efficiencies (ancestor count / member count, ×), per layer too; `fps` in images per
    second when measured, else None, with its interquartile range `fps_iqr` and the latency
    model's `fps_predicted`, and how it was obtained (`bench`); the seed 000 `environment` it was
    drawn under; `train_seconds` (wall time of its training), its `epochs`, the `device` it
    trained on and its mixed precision (`amp`: 'bf16', 'fp16', 'off'); `chance_accuracy` (the ancestor's
    only, when it learned nothing); `repair` (what a repair changed, as written); `sha256` of its
    genome.safetensors as written (None in runs of jetsynth versions that did not record it).
    Anything else written is kept in `extra` as written, and `written` keeps the order of the
    keys, so a record read and written back is the same file."""

    id: str
    generation: int
    member: int
    parents: tuple[str, ...]
    seed: int
    accuracy: float
    val_accuracy: float | None
    synapses: int
    clusters: int
    kernels: int
    units: int
    macs: int
    synaptic_efficiency: float
    cluster_efficiency: float
    mac_reduction: float
    layers: tuple[LayerRecord, ...]
    layer_cluster_efficiency: tuple[float, ...]
    layer_synaptic_efficiency: tuple[float, ...]
    fps: float | None = None
    fps_iqr: tuple[float, float] | None = None
    fps_predicted: float | None = None
    bench: BenchRecord | None = None
    environment: Environment | None = None
    train_seconds: float | None = None
    epochs: int | None = None
    device: str | None = None
    amp: str | None = None
    chance_accuracy: float | None = None
    repair: dict | None = None
    sha256: str | None = None
    extra: dict = field(default_factory=dict)
    written: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_json(cls, data: object, path: Path | str = "member.json") -> MemberRecord:
        """The record in `data` (a parsed member.json), checked; DamagedRecord naming `path`
        when it is not an object, lacks a field or holds a value of the wrong type."""
        if not isinstance(data, dict):
            raise DamagedRecord(path, f"a JSON object expected, found {type(data).__name__}")
        typed = set(_typed(cls))
        missing = sorted(name for name in typed - {"fps", *_OPTIONAL} if name not in data)
        if missing:
            raise DamagedRecord(path, f"missing {', '.join(missing)}")
        problems = [name for name, ok in _checks(data) if not ok]
        if problems:
            raise DamagedRecord(path, f"wrong value for {', '.join(problems)}")

        def number(name: str) -> float | None:
            return None if data.get(name) is None else float(data[name])

        iqr = data.get("fps_iqr")
        return cls(
            id=data["id"], generation=data["generation"], member=data["member"],
            parents=tuple(data["parents"]), seed=data["seed"], accuracy=float(data["accuracy"]),
            val_accuracy=number("val_accuracy"),
            synapses=data["synapses"], clusters=data["clusters"], kernels=data["kernels"],
            units=data["units"], macs=data["macs"],
            synaptic_efficiency=float(data["synaptic_efficiency"]),
            cluster_efficiency=float(data["cluster_efficiency"]),
            mac_reduction=float(data["mac_reduction"]),
            layers=tuple(LayerRecord.from_json(layer) for layer in data["layers"]),
            layer_cluster_efficiency=tuple(float(v) for v in data["layer_cluster_efficiency"]),
            layer_synaptic_efficiency=tuple(float(v) for v in data["layer_synaptic_efficiency"]),
            fps=number("fps"),
            fps_iqr=None if iqr is None else (float(iqr[0]), float(iqr[1])),
            fps_predicted=number("fps_predicted"),
            **{name: None if data.get(name) is None else kind.from_json(data[name])
               for name, kind in _NESTED.items()},
            train_seconds=number("train_seconds"), epochs=data.get("epochs"),
            device=data.get("device"), amp=data.get("amp"),
            chance_accuracy=number("chance_accuracy"),
            repair=None if data.get("repair") is None else dict(data["repair"]),
            sha256=data.get("sha256"),
            extra={k: v for k, v in data.items() if k not in typed},
            written=tuple(data),
        )

    @classmethod
    def read(cls, path: Path) -> MemberRecord:
        """The record in the file `path`; DamagedRecord when it is empty, not JSON or invalid."""
        path = Path(path)
        try:
            data = read_json(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise DamagedRecord(path, f"cannot be read: {exc}") from None
        except RefusedJSON as exc:
            raise DamagedRecord(path, str(exc)) from None
        except ValueError:
            raise DamagedRecord(path, "not JSON" if path.stat().st_size else "empty") from None
        return cls.from_json(data, path)

    def to_json(self) -> dict:
        """The dict written to member.json: every field written when read (in that order), the
        optional ones only when known, then `extra`."""
        out = {name: getattr(self, name) for name in _typed(type(self))}
        out = _present(out, self.written, _OPTIONAL)
        for name in ("parents", "layer_cluster_efficiency", "layer_synaptic_efficiency"):
            out[name] = list(out[name])
        out["layers"] = [layer.to_json() for layer in self.layers]
        for name in ("fps_iqr", "bench", "environment"):
            value = out.get(name)
            if isinstance(value, tuple):
                out[name] = list(value)
            elif value is not None and name in _NESTED:
                out[name] = value.to_json()
        if out.get("repair") is not None:
            out["repair"] = dict(out["repair"])
        return _ordered({**out, **self.extra}, self.written)

    def with_speed(self, speed: Speed) -> MemberRecord:
        """This record with its speed (`Speed`): fps, its spread, the prediction and the bench."""
        return replace(self, fps=speed.fps, fps_iqr=speed.fps_iqr, fps_predicted=speed.fps_predicted,
                       bench=speed.bench, written=self.written + tuple(
                           k for k in ("fps", "fps_iqr", "fps_predicted", "bench") if k not in self.written))

    def with_sha256(self, digest: str) -> MemberRecord:
        return replace(self, sha256=digest)

    def sizes(self) -> dict:
        """The member's size figures in the form `metrics.size_metrics` gives them (totals and
        per-layer counts), what `metrics.efficiency` divides a member's by."""
        return {"synapses": self.synapses, "clusters": self.clusters, "kernels": self.kernels,
                "units": self.units, "macs": self.macs,
                "layers": [layer.to_json() for layer in self.layers]}


def _checks(data: dict):
    """(field, whether its value has the right type and range) for every typed field."""

    def number(value, low=0.0, high=math.inf, none=False):
        if value is None:
            return none
        return (isinstance(value, _NUMBER) and not isinstance(value, bool)
                and low <= value <= high)

    def count(value, low=0):
        return isinstance(value, _INT) and not isinstance(value, bool) and value >= low

    def numbers(value):  # efficiencies: inf for a layer that lost everything
        return isinstance(value, list) and all(number(v) for v in value)

    def layer(value):
        return isinstance(value, dict) and all(
            isinstance(value.get(k), kinds) and not isinstance(value.get(k), bool)
            for k, kinds in LAYER_FIELDS.items())

    def bench(value):
        return isinstance(value, dict) and count(value.get("batch", 1), 1) and (
            value.get("features") is None or numbers(value["features"])) and all(
            value.get(k) is None or isinstance(value[k], str)
            for k in ("source", "backend", "precision", "predictor", "produced_by"))

    def environment(value):
        return isinstance(value, dict) and count(value.get("m")) and number(value.get("R"), high=1.0) \
            and number(value.get("r"), high=1.0)

    yield "id", isinstance(data["id"], str) and bool(data["id"])
    yield "generation", count(data["generation"], 1)
    yield "member", count(data["member"])
    yield "parents", isinstance(data["parents"], list) and all(isinstance(p, str) for p in data["parents"])
    yield "seed", count(data["seed"])
    yield "accuracy", number(data["accuracy"], high=1.0)
    yield "val_accuracy", number(data["val_accuracy"], high=1.0, none=True)
    for name in ("synapses", "clusters", "kernels", "units", "macs"):
        yield name, count(data[name])
    for name in ("synaptic_efficiency", "cluster_efficiency", "mac_reduction"):
        yield name, number(data[name])
    yield "layers", isinstance(data["layers"], list) and bool(data["layers"]) and all(
        layer(v) for v in data["layers"])
    yield "layer_cluster_efficiency", numbers(data["layer_cluster_efficiency"])
    yield "layer_synaptic_efficiency", numbers(data["layer_synaptic_efficiency"])
    yield "fps", number(data.get("fps"), none=True) and data.get("fps") != math.inf
    yield "fps_iqr", data.get("fps_iqr") is None or (
        isinstance(data["fps_iqr"], list) and len(data["fps_iqr"]) == 2
        and all(number(v) for v in data["fps_iqr"]))
    yield "fps_predicted", number(data.get("fps_predicted"), none=True)
    yield "bench", data.get("bench") is None or bench(data["bench"])
    yield "environment", data.get("environment") is None or environment(data["environment"])
    yield "train_seconds", number(data.get("train_seconds"), none=True)
    yield "epochs", data.get("epochs") is None or count(data["epochs"])
    for name in ("device", "amp"):
        yield name, data.get(name) is None or isinstance(data[name], str)
    yield "chance_accuracy", number(data.get("chance_accuracy"), high=1.0, none=True)
    yield "repair", data.get("repair") is None or isinstance(data["repair"], dict)
    sha = data.get("sha256")
    yield "sha256", sha is None or (isinstance(sha, str) and SHA256.fullmatch(sha) is not None)


def identity_problem(record: MemberRecord, folder: str) -> str | None:
    """How a record contradicts the member folder `folder` it was read from, or None: its id
    must be the folder's name and say its generation and member; its parents must be ids of
    earlier generations (the ancestor has none)."""
    found = MEMBER_ID.fullmatch(record.id)
    if record.id != folder or found is None:
        return f"its id {record.id!r} is not its folder's name {folder!r}"
    if (int(found.group(1)), int(found.group(2))) != (record.generation, record.member):
        return (f"its id {record.id} contradicts its generation {record.generation} and member "
                f"{record.member}")
    for parent in record.parents:
        match = MEMBER_ID.fullmatch(parent)
        if match is None or int(match.group(1)) >= record.generation:
            return f"parent {parent!r} is not a member of an earlier generation"
    if record.generation == 1 and record.parents:
        return "the ancestor has no parents"
    return None
