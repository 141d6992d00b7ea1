"""Crash-safe file writes: a reader (or a resumed run) sees a file whole or not at all."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

TMP_SUFFIX = ".tmp"
MAX_JSON_DEPTH = 32
"""The deepest nesting of arrays and objects a jetsynth JSON file may hold: its formats need at
most six levels; a file nested deeper is refused before the parser recurses into it."""
MAX_JSON_BYTES = 64 << 20
"""The largest JSON file read (bytes): records and settings are kilobytes."""
MAX_JSONL_BYTES = 1 << 30
"""The largest JSON-lines log read (bytes): an event log or measurement cache of a long run."""
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def current_umask() -> int:
    """The process's file-creation mask, read without changing it where Linux shows it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, fsync it, then rename it into place.
    The file gets the permissions any tool's new file gets (0666 less the umask), not the
    0600 of a private temporary file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as exc:  # name the file the user asked for, not the temporary one
        raise OSError(exc.errno, f"cannot write here ({exc.strerror})", str(path)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # after the write: some writers (safetensors) replace the file they are given
        os.chmod(tmp, 0o666 & ~current_umask())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_partial_writes(folder: Path) -> list[Path]:
    """Delete the temporary files `atomic_write` leaves when its process is killed mid-write
    (`.NAME.XXXX.tmp`) in `folder` and its sub-folders; the paths removed."""
    removed = []
    for tmp in Path(folder).rglob(f".*{TMP_SUFFIX}"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def write_json(path: Path, data: object) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


class RefusedJSON(ValueError):
    """A JSON file refused before parsing: too large, or nested deeper than any jetsynth format."""


def read_regular(path: Path, limit: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of `path`, which must be a regular file of at most `limit` bytes: a FIFO, a
    device (/dev/zero) or a folder is refused with an OSError saying so, before any read could
    block or fill memory."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        if info.st_size > limit:
            raise RefusedJSON(f"larger than {limit} bytes")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(limit + 1)
    finally:
        os.close(fd)


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep arrays and objects nest in the JSON `text` (strings skipped), counted up to one
    past `limit`; linear in the text, so a file nested 100,000 deep costs no recursion."""
    depth = deepest = 0
    for token in _JSON_TOKENS.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        elif char in "]}":
            depth -= 1
    return deepest


def parse_json(text: str, limit: int = MAX_JSON_DEPTH) -> object:
    """json.loads, refusing (RefusedJSON) nesting deeper than `limit` levels before parsing."""
    if json_depth(text, limit) > limit:
        raise RefusedJSON(f"nested deeper than {limit} levels")
    return json.loads(text)


def read_json(path: Path) -> object:
    """A JSON file of jetsynth's: a regular file (OSError otherwise), parsed with
    `parse_json` (ValueError when it is not JSON, too large or too deeply nested)."""
    return parse_json(read_regular(Path(path)).decode("utf-8"))


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def append_jsonl(path: Path, record: dict, sort_keys: bool = True) -> None:
    """Append one JSON line and fsync. A torn last line (a writer killed mid-line) is skipped by
    `read_jsonl`; the record after it starts on a fresh line, so the tear never swallows it."""
    line = json.dumps(record, sort_keys=sort_keys) + "\n"
    with open(path, "ab") as handle:
        if handle.tell() > 0 and not _ends_with_newline(path):
            line = "\n" + line
        handle.write(line.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def read_jsonl(path: Path) -> list[dict]:
    """The JSON objects of a JSON-lines file, in order; a torn or otherwise unparseable line (a
    writer killed mid-line) is skipped, the records after it are kept."""
    records = []
    if not Path(path).exists():
        return records
    for line in read_regular(Path(path), MAX_JSONL_BYTES).decode("utf-8", "replace").splitlines():
        try:
            record = parse_json(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def try_lock(path: Path, wait: bool = False) -> int | None:
    """Open (creating) `path` and take an exclusive `flock` on it: the open descriptor, which
    holds the lock until `unlock` or until the process ends however it ends (the OS drops it,
    so a kill -9 leaves no stale lock); None when another process holds it and not `wait`. The
    holder's pid is written in the file, for messages only."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def lock_holder(path: Path) -> str:
    """The pid written by the holder of the lock file `path`, or '?'."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return "?"
    return text if text.isdigit() else "?"


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on the file `path` (waiting for it) for the `with` block."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = try_lock(path, wait=True)
    try:
        yield
    finally:
        unlock(fd)
