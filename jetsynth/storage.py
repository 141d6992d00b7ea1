"""Crash-safe, confined file writes: a reader (or a resumed run) sees a file whole or not at all,
and a write meant for a folder (a run directory, the inventory's folder, the cache) lands in that
folder: nothing is written through a symbolic link or into something that is not a plain file.

Every writer names the folder its file belongs in (`root`); below it no component may be a link,
a `..`, or of the wrong kind. The folder itself is the user's to choose and is not checked.
A run directory is something users receive from others, so a link planted in it (report/ ->
~/.ssh) must end the command with one line naming the link before anything is written."""

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

from jetsynth.errors import JetsynthError

TMP_SUFFIX = ".tmp"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class UnsafePath(JetsynthError):
    """A write that would go through a symbolic link, out of its folder, or into something that
    is not a plain file (a FIFO, a device node, a folder)."""


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def _refuse(path: Path, mode: int) -> UnsafePath:
    what = _kind(mode)
    if stat.S_ISLNK(mode):
        with contextlib.suppress(OSError):
            what += f" (to {os.readlink(path)})"
    return UnsafePath(f"{path} is {what}; jetsynth writes only into plain files and folders, never "
                      "through links: remove or move it, then run the command again")


def confine(path: Path, root: Path | None = None, folder: bool = False) -> Path:
    """`path`, checked before it is written: below `root` (default: the path's own folder) every
    component is a real folder (no symbolic link, no `..`), and `path` itself, where it exists, is
    a plain file (a real folder with `folder=True`). Raises UnsafePath naming the first offender;
    nothing is created."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    try:
        names = path.relative_to(root).parts
    except ValueError:
        raise UnsafePath(f"{path} is outside {root}, where jetsynth writes it; "
                         "the name it was given is damaged") from None
    if ".." in names:
        raise UnsafePath(f"{path} leaves {root} through '..'; the name it was given is damaged")
    current = root
    for index, name in enumerate(names):
        current = current / name
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break  # this and what is below it do not exist yet: created as real folders/files
        except NotADirectoryError:
            break
        wants_folder = folder or index < len(names) - 1
        if not (stat.S_ISDIR(mode) if wants_folder else stat.S_ISREG(mode)):
            raise _refuse(current, mode)
    return path


def make_folder(path: Path, root: Path | None = None) -> Path:
    """Create the folder `path` and any missing folders between it and `root`, each a real folder
    (checked by `confine` before and after); the path."""
    path = confine(path, root, folder=True)
    path.mkdir(parents=True, exist_ok=True)
    return confine(path, root, folder=True)


def output_file(path: Path) -> Path:
    """A file the user named to be written (`-o`): refused with one line when it exists and is
    not a plain file (a FIFO, `/dev/null`, a folder, a symbolic link)."""
    return confine(path)


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


def atomic_write(path: Path, write: Callable[[Path], None], root: Path | None = None) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, fsync it, then rename it into place.
    The file gets the permissions any tool's new file gets (0666 less the umask), not the
    0600 of a private temporary file. `root`: the folder the file belongs in (see `confine`);
    a link or a non-file at `path` or on the way to it is refused before anything is written."""
    path = Path(path)
    confine(path, root)
    try:
        if root is None:
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            make_folder(path.parent, root)
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
    for parent, _, names in os.walk(folder):  # links to folders are not followed
        for name in names:
            tmp = Path(parent) / name
            if name.startswith(".") and name.endswith(TMP_SUFFIX) and stat.S_ISREG(os.lstat(tmp).st_mode):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def write_json(path: Path, data: object, root: Path | None = None) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"),
                 root)


def _open_confined(path: Path, flags: int, root: Path | None) -> int:
    """A descriptor of the plain file `path` (see `confine`), opened without following a link."""
    confine(path, root)
    try:
        fd = os.open(path, flags | _NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if os.path.islink(path):
            raise _refuse(Path(path), os.lstat(path).st_mode) from None
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _refuse(Path(path), mode)
    return fd


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


def append_jsonl(path: Path, record: dict, sort_keys: bool = True, root: Path | None = None) -> None:
    """Append one JSON line and fsync. A torn last line (a writer killed mid-line) is skipped by
    `read_jsonl`; the record after it starts on a fresh line, so the tear never swallows it.
    `root`: see `confine`."""
    line = json.dumps(record, sort_keys=sort_keys) + "\n"
    fd = _open_confined(Path(path), os.O_RDWR | os.O_APPEND | os.O_CREAT, root)
    try:
        size = os.fstat(fd).st_size
        if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


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


def try_lock(path: Path, wait: bool = False, root: Path | None = None) -> int | None:
    """Open (creating) `path` and take an exclusive `flock` on it: the open descriptor, which
    holds the lock until `unlock` or until the process ends however it ends (the OS drops it,
    so a kill -9 leaves no stale lock); None when another process holds it and not `wait`. The
    holder's pid is written in the file, for messages only. `root`: see `confine`."""
    fd = _open_confined(Path(path), os.O_RDWR | os.O_CREAT, root)
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
def locked(path: Path, root: Path | None = None):
    """Hold an exclusive lock on the file `path` (waiting for it) for the `with` block."""
    if root is None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    else:
        make_folder(Path(path).parent, root)
    fd = try_lock(path, wait=True, root=root)
    try:
        yield
    finally:
        unlock(fd)
