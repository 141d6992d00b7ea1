"""A pool of boards of one kind that time networks in parallel (`evolve --bench a --bench b`):
a member is timed on whichever board is free, so the boards must be interchangeable."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import replace

from jetsynth.devices.inventory import BenchTarget, Device
from jetsynth.errors import JetsynthError


def one_kind(targets: list[BenchTarget], names: list[str]) -> list[BenchTarget]:
    """`targets` (resolved from `names`, as the user typed them) when they can form a pool: one
    target, or several devices with distinct names and one profile; else one line saying why."""
    if len(targets) == 1:
        return targets
    here = [name for name, target in zip(names, targets, strict=True) if not isinstance(target, Device)]
    if here:
        raise JetsynthError(f"`bench` {here[0]} times on this machine and cannot join a pool of "
                            "devices: give one `bench` for it, or only devices (a pool must be one "
                            "kind of board)", setting="bench")
    if len(set(names)) < len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise JetsynthError(f"`bench` {twice} is given twice: give each board of the pool once",
                            setting="bench")
    targets = [_own_name(device, typed) for device, typed in zip(targets, names, strict=True)]
    seen = {}
    for name, device in zip(names, targets, strict=True):
        if device.name in seen:
            raise JetsynthError(f"`bench` {seen[device.name]} and `bench` {name} are both called "
                                f"'{device.name}': store the boards under names of their own "
                                "(jetsynth devices add NAME --host ...)", setting="bench")
        seen[device.name] = name
    profiles = {device.profile for device in targets}
    if len(profiles) > 1:
        kinds = ", ".join(f"{d.name}: {d.profile or 'no profile'}" for d in targets)
        raise JetsynthError(f"the `bench` devices are different boards ({kinds}): a pool must be "
                            "one kind of board, so that any of them may time any member", setting="bench")
    return targets


def _own_name(device: Device, typed: str) -> Device:
    """An ad-hoc `user@host:port` target is named after its host; in a pool, where boards behind
    one host differ by port, the port is added (`host-2201`)."""
    if typed != device.name and ":" in typed.rpartition("@")[2]:
        return replace(device, name=f"{device.name}-{device.port}")
    return device


class DevicePool:
    """Hands out free devices, one network per device at a time, to threads that time networks;
    devices are lent in turn (the one given back longest ago first)."""

    def __init__(self, devices: list[Device]) -> None:
        self.devices = list(devices)
        self._free = list(self.devices)
        self._changed = threading.Condition()

    @contextmanager
    def lease(self, avoid: Collection[str] = ()) -> Iterator[Device]:
        """A free device whose name is not in `avoid` (boards that already failed this
        network), waiting for one; given back when the block ends, whatever happened."""
        if all(device.name in avoid for device in self.devices):
            raise ValueError("every device of the pool is to be avoided")
        with self._changed:
            self._changed.wait_for(lambda: any(d.name not in avoid for d in self._free))
            device = next(d for d in self._free if d.name not in avoid)
            self._free.remove(device)
        try:
            yield device
        finally:
            with self._changed:
                self._free.append(device)
                self._changed.notify_all()
