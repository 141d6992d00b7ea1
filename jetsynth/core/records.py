"""A member's record (`member.json`), typed and checked when read.

A run directory outlives the process that wrote it: files get truncated, edited, copied half-way.
`MemberRecord.from_json` checks every field a reader relies on and names the file on one line
when one is missing or of the wrong type; `to_json` gives back exactly the fields that were
written (the ones this version does not type travel in `extra`), so `report --json` and every
reader of the dict see the documented fields unchanged."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
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


@dataclass(frozen=True)
class MemberRecord:
    """One finished member: who it is (id, generation, member, parents, seed), what it scores
    (test `accuracy`, `val_accuracy` or None without a validation split, fractions in [0, 1]),
    its size (counts of synapses, clusters, kernels, units; multiply-accumulates per image) and
    seed 001's efficiencies (ancestor count / member count, ×), per layer too; `fps` in images per
    second when measured, else None; `sha256` of its genome.safetensors as written (None in runs
    of jetsynth versions that did not record it). Anything else written (environment, bench,
    training time) is kept in `extra` as written."""

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
    layers: tuple[dict, ...]
    layer_cluster_efficiency: tuple[float, ...]
    layer_synaptic_efficiency: tuple[float, ...]
    fps: float | None = None
    sha256: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: object, path: Path | str = "member.json") -> MemberRecord:
        """The record in `data` (a parsed member.json), checked; DamagedRecord naming `path`
        when it is not an object, lacks a field or holds a value of the wrong type."""
        if not isinstance(data, dict):
            raise DamagedRecord(path, f"a JSON object expected, found {type(data).__name__}")
        typed = {f.name for f in fields(cls)} - {"extra"}
        missing = sorted(name for name in typed - {"fps", "sha256"} if name not in data)
        if missing:
            raise DamagedRecord(path, f"missing {', '.join(missing)}")
        problems = [name for name, ok in _checks(data) if not ok]
        if problems:
            raise DamagedRecord(path, f"wrong value for {', '.join(problems)}")
        return cls(
            id=data["id"], generation=data["generation"], member=data["member"],
            parents=tuple(data["parents"]), seed=data["seed"], accuracy=float(data["accuracy"]),
            val_accuracy=None if data["val_accuracy"] is None else float(data["val_accuracy"]),
            synapses=data["synapses"], clusters=data["clusters"], kernels=data["kernels"],
            units=data["units"], macs=data["macs"],
            synaptic_efficiency=float(data["synaptic_efficiency"]),
            cluster_efficiency=float(data["cluster_efficiency"]),
            mac_reduction=float(data["mac_reduction"]),
            layers=tuple(dict(layer) for layer in data["layers"]),
            layer_cluster_efficiency=tuple(float(v) for v in data["layer_cluster_efficiency"]),
            layer_synaptic_efficiency=tuple(float(v) for v in data["layer_synaptic_efficiency"]),
            fps=None if data.get("fps") is None else float(data["fps"]),
            sha256=data.get("sha256"),
            extra={k: v for k, v in data.items() if k not in typed},
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
        """The dict written to member.json: the typed fields under their names, then `extra`."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        if self.sha256 is None:  # a run written before records carried it
            del out["sha256"]
        for name in ("parents", "layers", "layer_cluster_efficiency", "layer_synaptic_efficiency"):
            out[name] = [dict(v) if isinstance(v, dict) else v for v in out[name]]
        return {**out, **self.extra}


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
