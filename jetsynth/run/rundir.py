"""The on-disk state of a run: its configuration, an append-only event log, and one folder per
member (genome + `member.json`, the latter written last so that its presence means done).

One process writes a run at a time: `open_run` takes an exclusive lock on RUN/run.lock (an
`flock`, dropped by the OS when the process ends, however it ends) and a second writer is
refused; readers (report, export) take no lock."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from jetsynth.core.genome import (
    TENSORS_FILE,
    Genome,
    genome_header,
    load_genome,
    load_masks,
    save_genome,
    topology_for,
)
from jetsynth.core.records import DamagedRecord, MemberRecord, identity_problem
from jetsynth.errors import JetsynthError
from jetsynth.nn.growth import grown_factory, is_grown, split_arch
from jetsynth.nn.structure import Topology
from jetsynth.run.config import PLACEMENT, EvolveConfig
from jetsynth.run.settings import SECTION_OF, SECTION_TYPES, setting_fields
from jetsynth.storage import (
    append_jsonl,
    confine,
    lock_holder,
    make_folder,
    read_json,
    remove_partial_writes,
    sha256_file,
    try_lock,
    unlock,
    write_json,
)

CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
MEMBERS_DIR = "members"
MEMBER_FILE = "member.json"
LOCK_FILE = "run.lock"
RESUMABLE_CHANGES = ("generations", "threads", *PLACEMENT)
"""Settings a resumed run may change: more generations, how many threads compute them, and
where members train (the executor and its placement)."""
DAMAGED_DIR = "damaged"
GROW_FILE = "grow.json"
"""A `jetsynth grow` run's settings and, when done, its final selection (see `run.grow`)."""
CONFIG_FORMAT = 2
"""The layout of config.json this version writes: 2, the settings nested by section
({"evolution": {"generations": 8, ...}, ...}, `EvolveConfig.nested`)."""
READABLE_CONFIG_FORMATS = (1, 2)
"""1: the settings flat ({"generations": 8, ...}), as jetsynth 0.1.0 wrote them; a file without
the field was written before it was recorded, in that layout."""


def versions() -> dict:
    from jetsynth.version import __version__

    return {
        "jetsynth": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def member_id(generation: int, member: int) -> str:
    """The name of a member, and of its folder under RUN/members: gII-mJJ (the ancestor is
    g01-m00)."""
    return f"g{generation:02d}-m{member:02d}"


class RunDirectory:
    """The on-disk state of a run: config, events, and one folder per member."""

    def __init__(self, root: Path, factories: dict | None = None):
        self.root = Path(root)
        self.factories = factories or {}  # architectures the user allowed (models.stored_factories)
        self._topologies: dict[tuple, Topology] = {}
        self._lock = None
        self.set_aside: list[str] = []  # damaged members a resume moved to RUN/damaged
        self.training_started = False  # the ancestor began training: a failure now is resumable

    def acquire(self) -> None:
        """Become the run's one writer, or fail with one line naming the process that is."""
        if self._lock is not None:
            return
        path = self.root / LOCK_FILE
        fd = try_lock(path, root=self.root)
        if fd is None:
            raise JetsynthError(
                f"{self.root} is being written by another jetsynth process (pid "
                f"{lock_holder(path)}); wait for it to end, or stop it, before resuming this run"
            )
        self._lock = fd

    def release(self) -> None:
        if self._lock is not None:
            unlock(self._lock)
            self._lock = None

    def member_dir(self, mid: str) -> Path:
        return self.root / MEMBERS_DIR / mid

    def record(self, mid: str) -> MemberRecord | None:
        """The record of member `mid` (None while unfinished), read and checked against its
        folder (`records.identity_problem`): DamagedRecord naming the file otherwise."""
        path = self.member_dir(mid) / MEMBER_FILE
        if not path.exists():
            return None
        record = MemberRecord.read(path)
        problem = identity_problem(record, mid)
        if problem is not None:
            raise DamagedRecord(path, problem)
        return record

    def records(self) -> list[MemberRecord]:
        folder = self.root / MEMBERS_DIR
        if not folder.is_dir():
            return []
        found = [self.record(p.name) for p in sorted(folder.iterdir()) if p.is_dir()]
        return [r for r in found if r is not None]

    def set_aside_damaged(self) -> list[str]:
        """Move every damaged member out of the way, into RUN/damaged/, so that a resumed run
        trains it again: a member entry that is not a folder, a member.json that does not
        validate. Returns what was moved, as 'member: why' lines. A genome that does not read is
        not moved: it may have been tampered with, and the run stops on one line naming it."""
        folder = self.root / MEMBERS_DIR
        if not folder.is_dir():
            return []
        confine(folder, self.root, folder=True)  # never move the files of a folder it links to
        moved = []
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue
            problem = None
            if not entry.is_dir():
                problem = "not a folder"
            elif (entry / MEMBER_FILE).exists():
                try:
                    self.record(entry.name)
                except DamagedRecord as exc:
                    problem = f"{MEMBER_FILE} {exc.problem}"
            if problem is not None:
                target = _free_name(self.root / DAMAGED_DIR / entry.name)
                make_folder(target.parent, self.root)
                entry.rename(target)
                moved.append(f"{entry.name}: {problem}; kept in {target}")
        return moved

    def genome(self, mid: str) -> Genome:
        """A member's genome; the architecture is traced once per run directory object, with
        the factory the user allowed for it (a built-in otherwise)."""
        folder = self.member_dir(mid)
        record = self.record(mid)
        header = genome_header(folder)
        if record is not None:
            verify_genome(folder, record, header)
        key = (header["arch"], tuple(header["input_shape"]), header["num_classes"])
        if key not in self._topologies:
            self._topologies[key] = topology_for(*key, self._factory(header["arch"]))
        return load_genome(folder, self._topologies[key])

    def _factory(self, arch: str):
        """The allowed factory of `arch`, or of the base of an R2R-grown `arch`."""
        base = split_arch(arch)[0] if is_grown(arch) else arch
        if arch not in self.factories and base in self.factories:
            return grown_factory(self.factories[base], arch)
        return self.factories.get(arch)

    def masks(self, mid: str) -> dict[str, torch.Tensor]:
        folder = self.member_dir(mid)
        record = self.record(mid)
        if record is not None:
            verify_genome(folder, record, genome_header(folder))
        return load_masks(folder)

    def event(self, kind: str, **fields_) -> None:
        append_jsonl(self.root / EVENTS_FILE, {"event": kind, "time": round(time.time(), 3),
                                               **fields_}, root=self.root)

    def stored_config(self) -> EvolveConfig | None:
        """The run's settings from config.json (None when there is none), checked: a file in
        another format, with settings this version does not know, or with values of the wrong
        type is refused with one line rather than taken half-read."""
        path = self.root / CONFIG_FILE
        if not path.exists():
            return None
        try:
            data = read_json(path)
        except (OSError, ValueError) as exc:
            raise JetsynthError(f"{path} cannot be read ({exc}); it is damaged") from None
        stored = data.get("config") if isinstance(data, dict) else None
        versions_ = data.get("versions") if isinstance(data, dict) else None
        writer = versions_.get("jetsynth", "unknown") if isinstance(versions_, dict) else "unknown"
        where = f"{path} (written by jetsynth {writer})"
        version = data.get("format", 1) if isinstance(data, dict) else None
        if isinstance(version, int) and not isinstance(version, bool) and version > CONFIG_FORMAT:
            raise JetsynthError(f"{where} is in format {version}, newer than this jetsynth "
                                f"({versions()['jetsynth']}) reads ({CONFIG_FORMAT}); upgrade "
                                "jetsynth to open the run")
        if version not in READABLE_CONFIG_FORMATS or not isinstance(stored, dict):
            raise JetsynthError(f"{where} is in a format this jetsynth ({versions()['jetsynth']}) "
                                "does not read; use the jetsynth version that made the run")
        if version >= 2:
            stored = _flattened(stored, where)
        types = {f.name: f.type for f in setting_fields()}
        unknown = sorted(set(stored) - set(types))
        if unknown:
            raise JetsynthError(f"{where} has settings this jetsynth does not know "
                                f"({', '.join(unknown)}); use the jetsynth version that made the run")
        wrong = sorted(k for k, v in stored.items() if not fits_annotation(v, types[k]))
        if wrong:
            raise JetsynthError(f"{where}: the values of {', '.join(wrong)} do not parse; the file "
                                "is damaged or from another jetsynth version")
        values = dict(stored)
        values.setdefault("pressure", "fixed")
        values.setdefault("val_split", 0.0)  # runs from before the validation split had none
        values.setdefault("screen", 1)  # runs from before screening drew once
        values.setdefault("preset", "seed001")  # runs from before the presets had the seed settings
        values.setdefault("channel_multiple", 1)  # ... and exact widths
        return EvolveConfig.from_flat(values)

    def save(self, genome: Genome, record: MemberRecord) -> MemberRecord:
        """Write the genome, then its record with the genome's sha256 added; returns the record
        as written."""
        folder = self.member_dir(genome.lineage.id)
        save_genome(genome, folder, self.root)
        record = record.with_sha256(sha256_file(folder / TENSORS_FILE))
        write_json(folder / MEMBER_FILE, record.to_json(), self.root)
        return record

    def member_folder(self, mid: str) -> Path:
        """A member's folder, created as a real folder inside the run (for writing into it)."""
        return make_folder(self.member_dir(mid), self.root)


def verify_genome(folder: Path, record: MemberRecord, header: dict) -> None:
    """Check a member's genome against its record before anything is bred, exported or timed
    from it: genome.json's lineage must name the record's id and parents, and genome.safetensors
    must have the sha256 the record holds (records written before jetsynth recorded it have
    none: then only the lineage is checked). One line naming the file otherwise."""
    lineage = header.get("lineage")
    if not isinstance(lineage, dict) or lineage.get("id") != record.id or (
            lineage.get("parents") != list(record.parents)):
        raise JetsynthError(
            f"{folder / 'genome.json'} belongs to another member than its {MEMBER_FILE} "
            f"({record.id}); the genome was replaced or damaged: move {folder} away (a resumed "
            "run trains it again)")
    if record.sha256 is not None and sha256_file(folder / TENSORS_FILE) != record.sha256:
        raise JetsynthError(
            f"{folder / TENSORS_FILE} is not the genome its {MEMBER_FILE} records (sha256 "
            f"differs); it was replaced or damaged: move {folder} away (a resumed run trains it "
            "again)")


def read_object(path: Path) -> dict:
    """A JSON object the run wrote beside its members (grow.json, latency-model.json, a
    population's state), checked as data: one line naming the file when it is not a regular
    file, not JSON, nested deeper than any jetsynth format, or not an object."""
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise JetsynthError(f"{path} cannot be read ({exc}); it is damaged") from None
    if not isinstance(data, dict):
        raise JetsynthError(f"{path} is damaged (a JSON object expected, found "
                            f"{type(data).__name__})")
    return data


def _free_name(path: Path) -> Path:
    """`path`, or `path.1`, `path.2`... whichever does not exist yet."""
    candidate, n = path, 0
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


_SCALARS = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _flattened(nested: dict, where: str) -> dict:
    """The settings of a format-2 config ({section: {setting: value}}) flat, each checked to lie
    in its own section."""
    flat: dict = {}
    for section, values in nested.items():
        if section not in SECTION_TYPES or not isinstance(values, dict):
            raise JetsynthError(f"{where} has a section this jetsynth does not know ({section}); "
                                "use the jetsynth version that made the run")
        misplaced = sorted(k for k in values if k in SECTION_OF and SECTION_OF[k] != section)
        if misplaced:
            raise JetsynthError(f"{where}: {', '.join(misplaced)} must not lie in {section}; the "
                                "file is damaged")
        flat.update(values)
    return flat


def fits_annotation(value: object, annotation: str) -> bool:
    """Whether a JSON value fits an EvolveConfig field's annotation ('int', 'float | None',
    'tuple[float, ...]', 'tuple[float, float]')."""
    options = [part.strip() for part in annotation.split("|")]
    if value is None:
        return "None" in options
    for option in options:
        if option in _SCALARS:
            if isinstance(value, _SCALARS[option]) and (option == "bool"
                                                         or not isinstance(value, bool)):
                return True
        elif option.startswith("tuple[") and isinstance(value, list):
            items = [item.strip() for item in option[6:-1].split(",")]
            if items[-1] == "...":
                kinds = [items[0]] * len(value)
            elif len(items) == len(value):
                kinds = items
            else:
                continue
            if all(fits_annotation(v, kind) for v, kind in zip(value, kinds, strict=True)):
                return True
    return False


def open_run(root: Path, config: EvolveConfig, resume: bool,
             factories: dict | None = None) -> RunDirectory:
    """Create a run directory, or reopen one to resume, as its one writer (the lock is held
    until `release` or the end of the process); a resumed run must keep its configuration
    (only --generations may grow). `factories`: see RunDirectory."""
    run = RunDirectory(root, factories)
    if resume and not (run.root / CONFIG_FILE).is_file():
        raise JetsynthError(f"nothing to resume in {root}: no {CONFIG_FILE}; drop --resume")
    run.root.mkdir(parents=True, exist_ok=True)
    run.acquire()
    try:
        _check_opening(run, config, resume)
        if resume:
            # a writer killed inside atomic_write leaves its temporary file; the lock is ours now
            remove_partial_writes(run.root)
        run.set_aside = run.set_aside_damaged() if resume else []
        write_json(run.root / CONFIG_FILE, {"config": config.nested(), "format": CONFIG_FORMAT,
                                            "versions": versions()}, run.root)
    except BaseException:
        run.release()
        raise
    return run


def _check_opening(run: RunDirectory, config: EvolveConfig, resume: bool) -> None:
    root = run.root
    if not resume:
        if any(p.name != LOCK_FILE for p in root.iterdir()):
            raise JetsynthError(
                f"{root} already exists and is not empty: add --resume to continue it, "
                "or choose another --run-dir"
            )
        return
    events = root / EVENTS_FILE
    if events.exists() and not events.is_file():
        raise JetsynthError(f"{events} is not a file: move it away to resume the run (a fresh "
                            "event log is started)")
    stored = run.stored_config().with_policies()
    differing = [
        f.name
        for f in setting_fields()
        if f.name not in RESUMABLE_CHANGES and getattr(stored, f.name) != getattr(config, f.name)
    ]
    if differing:
        raise JetsynthError(
            f"{root} was started with other settings ({', '.join(differing)}); resume it "
            "with the same options or choose another --run-dir"
        )
    if config.generations < stored.generations:
        raise JetsynthError(
            f"{root} runs to {stored.generations} generations; --resume can add generations, "
            f"not drop them (give --generations {stored.generations} or more, or leave it out)"
        )


def run_directory_holding(path: Path) -> Path | None:
    """The run directory `path` lies in (a folder above it holding config.json beside members/,
    events.jsonl or run.lock), or None: outputs are never written into a run."""
    path = Path(os.path.abspath(path))
    for folder in (path, *path.parents):
        for candidate in dict.fromkeys((folder, folder.resolve())):
            if (candidate / CONFIG_FILE).is_file() and any(
                    os.path.lexists(candidate / name) for name in (MEMBERS_DIR, EVENTS_FILE, LOCK_FILE)):
                return folder
    return None


def load_records(run_dir: Path) -> tuple[EvolveConfig, list[MemberRecord]]:
    """The run's configuration as config.json stores it (policies not filled in) and its
    members' records, ancestor first."""
    run = RunDirectory(Path(run_dir))
    config = run.stored_config()
    if config is None:
        raise JetsynthError(f"{run_dir} is not a jetsynth run directory (no {CONFIG_FILE})")
    records = sorted(run.records(), key=lambda r: (r.generation, r.member))
    if not records:
        raise JetsynthError(f"{run_dir} holds no finished member yet; run or resume the evolution")
    return config, records


def grown_pick(run_dir: Path, records: list[MemberRecord]) -> MemberRecord | None:
    """For a grow run (None otherwise), the member `export --best` ships: the first of the final
    K selected on validation, or, while the run is unfinished, the best on validation so far."""
    path = Path(run_dir) / GROW_FILE
    if not path.is_file():
        return None
    final = read_object(path).get("final")
    by_id = {r.id: r for r in records}
    if final and final[0]["id"] in by_id:
        return by_id[final[0]["id"]]
    return max(records, key=lambda r: (r.val_accuracy or 0.0, -r.generation))
