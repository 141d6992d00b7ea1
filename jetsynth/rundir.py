"""The on-disk state of a run: its configuration, an append-only event log, and one folder per
member (genome + `member.json`, the latter written last so that its presence means done)."""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from .config import EvolveConfig
from .errors import JetsynthError
from .genome import Genome, load_genome, save_genome
from .storage import append_jsonl, read_json, write_json

CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
MEMBERS_DIR = "members"
MEMBER_FILE = "member.json"


def versions() -> dict:
    from . import __version__

    return {
        "jetsynth": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


class RunDirectory:
    """The on-disk state of a run: config, events, and one folder per member."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def member_dir(self, mid: str) -> Path:
        return self.root / MEMBERS_DIR / mid

    def record(self, mid: str) -> dict | None:
        path = self.member_dir(mid) / MEMBER_FILE
        return read_json(path) if path.is_file() else None

    def records(self) -> list[dict]:
        folder = self.root / MEMBERS_DIR
        if not folder.is_dir():
            return []
        found = [self.record(p.name) for p in sorted(folder.iterdir()) if p.is_dir()]
        return [r for r in found if r is not None]

    def genome(self, mid: str) -> Genome:
        return load_genome(self.member_dir(mid))

    def event(self, kind: str, **fields_) -> None:
        append_jsonl(self.root / EVENTS_FILE, {"event": kind, "time": round(time.time(), 3),
                                               **fields_})

    def stored_config(self) -> EvolveConfig | None:
        path = self.root / CONFIG_FILE
        if not path.is_file():
            return None
        stored = read_json(path)["config"]
        known = {f.name for f in fields(EvolveConfig)}
        values = {k: v for k, v in stored.items() if k in known}
        values.setdefault("pressure", "fixed")
        values.setdefault("val_split", 0.0)  # runs from before the validation split had none
        for key in ("alphas", "overlap_band", "mean", "std"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        return EvolveConfig(**values)

    def save(self, genome: Genome, record: dict) -> None:
        folder = self.member_dir(genome.lineage.id)
        save_genome(genome, folder)
        write_json(folder / MEMBER_FILE, record)


def open_run(root: Path, config: EvolveConfig, resume: bool) -> RunDirectory:
    """Create a run directory, or reopen one to resume; a resumed run must keep its
    configuration (only --generations may grow)."""
    run = RunDirectory(root)
    stored = run.stored_config()
    if stored is not None:
        stored = stored.with_policies()
    if resume:
        if stored is None:
            raise JetsynthError(f"nothing to resume in {root}: no {CONFIG_FILE}; drop --resume")
        differing = [
            f.name
            for f in fields(EvolveConfig)
            if f.name != "generations" and getattr(stored, f.name) != getattr(config, f.name)
        ]
        if differing:
            raise JetsynthError(
                f"{root} was started with other settings ({', '.join(differing)}); resume it "
                "with the same options or choose another --run-dir"
            )
    else:
        if run.root.exists() and any(run.root.iterdir()):
            raise JetsynthError(
                f"{root} already exists and is not empty: add --resume to continue it, "
                "or choose another --run-dir"
            )
    run.root.mkdir(parents=True, exist_ok=True)
    write_json(run.root / CONFIG_FILE, {"config": asdict(config), "versions": versions()})
    return run
