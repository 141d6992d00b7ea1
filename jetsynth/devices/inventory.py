"""The device inventory: named SSH targets stored as TOML in the user's config directory
(`$XDG_CONFIG_HOME/jetsynth/devices.toml` on Linux), and ad-hoc `user@host[:port]` targets."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from jetsynth.devices.profiles import get_profile
from jetsynth.errors import JetsynthError
from jetsynth.storage import atomic_write, locked

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HOST = re.compile(r"^[A-Za-z0-9_.:\[\]%-]+$")
_USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Device:
    """One SSH-reachable device. `python` is the interpreter that runs the agent there;
    `remote_dir` is where per-deployment work directories are made; `known_hosts` overrides
    OpenSSH's own file (None: ~/.ssh/known_hosts and ~/.ssh/config apply)."""

    name: str
    host: str
    user: str | None = None
    port: int = 22
    identity: str | None = None
    python: str = "python3"
    profile: str | None = None
    known_hosts: str | None = None
    remote_dir: str = "/tmp"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise JetsynthError(f"device name '{self.name}' must be letters, digits, '.', '_' or '-'")
        if not _HOST.match(self.host) or self.host.startswith("-"):
            raise JetsynthError(f"'{self.host}' is not a host name or address")
        if self.user is not None and not _USER.match(self.user):
            raise JetsynthError(f"'{self.user}' is not a user name")
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 < self.port < 65536:
            raise JetsynthError(f"port {self.port} is out of range (1-65535)")
        if self.known_hosts is not None and any(c in self.known_hosts for c in "\n\r\0"):
            raise JetsynthError(f"`known_hosts` must be one line (a file path), not {self.known_hosts!r}",
                                setting="known_hosts")
        if not self.remote_dir.startswith("/") or any(c in self.remote_dir for c in "\n\r\0"):
            raise JetsynthError(f"`remote_dir` must be an absolute path on the device (one line), "
                                f"not {self.remote_dir!r}", setting="remote_dir")
        get_profile(self.profile)

    @property
    def destination(self) -> str:
        """What ssh connects to: user@host, or host where ~/.ssh/config names the user."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def label(self) -> str:
        return self.name

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}



BenchTarget = str | Device
"""Where a network is timed: an onnxruntime backend name here ('ort-cpu', ...) or a Device."""

def split_destination(text: str) -> tuple[str | None, str, int | None]:
    """'user@host[:port]' (or 'host', 'user@[v6]:port', a bare 'user@::1') -> (user, host, port);
    a port that is not a number from 1 to 65535 (`:0`, `:ssh`) is refused, never read as 22."""
    user, _, rest = text.rpartition("@")
    tail = ""
    if rest.startswith("["):
        host, closed, tail = rest[1:].partition("]")
        if not closed or (tail and not tail.startswith(":")):
            raise JetsynthError(f"'{text}' is not user@[address]:port; close the brackets around "
                                "the IPv6 address")
    elif rest.count(":") == 1:
        host, tail = rest.split(":")[0], ":" + rest.split(":")[1]
    else:
        host = rest
    port = None
    if tail:
        number = tail[1:]
        if not (number.isascii() and number.isdigit() and 0 < int(number) < 65536):
            raise JetsynthError(f"'{text}': the port must be a number from 1 to 65535, not "
                                f"{number!r}")
        port = int(number)
    if not host:
        raise JetsynthError(f"'{text}' names no host; write user@host[:port]")
    return user or None, host, port


def inventory_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("jetsynth")) / "devices.toml"


def load_devices(path: Path | None = None) -> dict[str, Device]:
    """The stored devices by name; an absent file is an empty inventory."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = path or inventory_path()
    if not os.path.lexists(path):
        return {}
    if not path.is_file():  # a folder, a FIFO, /dev/zero: reading it would hang or fill memory
        raise JetsynthError(f"{path} is not a file ({_what(path)}); the device inventory must be a "
                            "TOML file: move it away, then add the devices again")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise JetsynthError(f"{path} is not valid TOML ({exc}); fix or delete it") from None
    except RecursionError:  # arrays nested thousands deep: no inventory nests at all
        raise JetsynthError(f"{path} nests arrays or tables too deeply to be an inventory; fix or "
                            "delete it") from None
    problems = inventory_problems(data)
    if problems:
        raise JetsynthError("\n".join(f"{path}: {problem}" for problem in problems)
                            + f"\nfix or delete {path}")
    devices = {}
    for name, entry in data.get("devices", {}).items():
        try:
            devices[name] = Device(name=name, **{k: v for k, v in entry.items() if k != "name"})
        except JetsynthError as exc:
            raise JetsynthError(f"{path}: device '{name}': {exc}") from None
    return devices


def _what(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return "a link to nothing"
    return "a folder" if path.is_dir() else "a FIFO" if path.is_fifo() else (
        "a device node" if path.is_char_device() or path.is_block_device() else "not a plain file")


_FIELD_TYPES = {"host": str, "user": str, "port": int, "identity": str, "python": str, "profile": str,
                "known_hosts": str, "remote_dir": str, "name": str}


def inventory_problems(data: dict) -> list[str]:
    """Every way the parsed devices.toml departs from its schema ([devices.NAME] tables whose
    values have Device's types, a host in each), one line each: a file is checked whole, so the
    user fixes it in one pass."""
    table = data.get("devices", {})
    if not isinstance(table, dict):
        return ["'devices' must be a table of [devices.NAME] entries"]
    problems = []
    known = {f.name for f in fields(Device)}
    for name, entry in table.items():
        if not isinstance(entry, dict):
            problems.append(f"devices.{name} must be a table ([devices.{name}] with host = ...), "
                            f"not {type(entry).__name__} {entry!r}")
            continue
        unknown = sorted(set(entry) - known)
        if unknown:
            problems.append(f"device '{name}' has unknown keys {unknown}")
        if "host" not in entry:
            problems.append(f"device '{name}' has no host")
        for key, wanted in _FIELD_TYPES.items():
            value = entry.get(key)
            if value is None or key not in known:
                continue
            if not isinstance(value, wanted) or isinstance(value, bool):
                kind = "an integer" if wanted is int else "a string"
                problems.append(f"device '{name}': {key} must be {kind}, not {value!r}")
            elif key == "port" and not 0 < value < 65536:
                problems.append(f"device '{name}': port {value} is out of range (1-65535)")
    return problems


def _edit_inventory(path: Path | None, change: Callable[[dict[str, Device], dict], None]) -> Path:
    """Read, change and write the inventory as one step: an exclusive lock on devices.toml.lock
    beside it keeps concurrent `devices add/remove` from losing each other's updates, and the
    file is edited with tomlkit so the user's comments and layout survive. `change(devices,
    table)` gets the parsed devices and the document's [devices] table to edit. The write is
    atomic (a crash leaves the old file or the new one)."""
    import tomlkit

    path = path or inventory_path()
    with locked(path.with_name(path.name + ".lock")):
        devices = load_devices(path)
        document = tomlkit.parse(path.read_text()) if path.is_file() else tomlkit.document()
        if "devices" not in document:
            document["devices"] = tomlkit.table(is_super_table=True)
        change(devices, document["devices"])
        text = tomlkit.dumps(document)
        atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def _device_table(device: Device):
    import tomlkit

    table = tomlkit.table()
    for key, value in device.as_dict().items():
        if key != "name":
            table[key] = value
    return table


def add_device(device: Device, path: Path | None = None, replace: bool = False) -> Path:
    def change(devices: dict[str, Device], table) -> None:
        if device.name in devices and not replace:
            raise JetsynthError(f"a device named '{device.name}' exists; pass `replace` to "
                                "overwrite it", setting="replace")
        table[device.name] = _device_table(device)

    return _edit_inventory(path, change)


def remove_device(name: str, path: Path | None = None) -> Path:
    def change(devices: dict[str, Device], table) -> None:
        if name not in devices:
            raise JetsynthError(f"no device named '{name}'; `jetsynth devices list` shows the "
                                "stored ones")
        del table[name]

    return _edit_inventory(path, change)


def resolve_device(target: str, path: Path | None = None) -> Device:
    """A stored device by name, or an ad-hoc `user@host[:port]` target."""
    devices = load_devices(path)
    if target in devices:
        return devices[target]
    if "@" in target:
        user, host, port = split_destination(target)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", host).lstrip("_.-") or "device"
        return Device(name=name, host=host, user=user, port=22 if port is None else port)
    raise JetsynthError(f"no device named '{target}'; add it with `jetsynth devices add {target} --host "
                        "user@address` or give user@host[:port]")
