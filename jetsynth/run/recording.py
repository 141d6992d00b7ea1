"""Recording trained members, with their speed, as the generation loop hands them over: one at a
time on one bench target (`record_member`, as a run always did), or on a pool of devices of one
kind (`evolve --bench a --bench b`), where the members that need timing are timed in parallel,
one member per device at a time, and each is written to the run directory as its timing ends.

A pool changes where and when a member is timed, never what is recorded besides its timing:
the decision to time or predict is made in the order members arrive, a member whose
architecture is being timed for another waits for that timing and reuses it (as one device would
have), and, while the run fits its own latency model from measurements (`--measure-every` > 1
without a calibration), each member waits for the measurements before it, so the model sees
what one device would have shown it. The measurement cache and the run directory are written
by one thread at a time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace

from jetsynth.core.records import MemberRecord
from jetsynth.devices.inventory import BenchTarget, Device
from jetsynth.devices.pool import DevicePool
from jetsynth.run.config import EvolveConfig
from jetsynth.run.measurement import MeasurementPlan, Speedometer
from jetsynth.run.member import (
    MemberTask,
    keeps_floor,
    member_record,
    record_member,
    save_member,
    shipped_metadata,
)
from jetsynth.run.rundir import RunDirectory
from jetsynth.run.timing import Timing
from jetsynth.run.train import TrainResult


class TimingPool:
    """Threads that time networks on a pool of devices, one thread per device."""

    def __init__(self, devices: list[Device]) -> None:
        self.devices = DevicePool(devices)
        self.threads = ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="jetsynth-bench")
        self.closing = False

    def close(self) -> None:
        """Cancel timings not started and wait for those under way (a deploy ends within its
        timeouts); a timing that fails from now on is not recorded (the run is stopping)."""
        self.closing = True
        self.threads.shutdown(wait=True, cancel_futures=True)


def open_timing_pool(targets: list[BenchTarget]) -> TimingPool | None:
    """A TimingPool over `targets` when there are several (devices of one kind, as
    `EvolveConfig.bench_targets` checked), else None: one target times in the loop."""
    return TimingPool(targets) if len(targets) > 1 else None


class Recorder:
    """Measures (with a speedometer) and writes each trained member handed to `add`; `add` and
    `finish` return the records written since the last call, for the caller to show.
    `on_timing(member_id)` is told, in the caller's thread, of each member handed to the pool."""

    def __init__(self, run: RunDirectory, config: EvolveConfig, speedometer: Speedometer | None,
                 pool: TimingPool | None = None,
                 on_timing: Callable[[str], None] | None = None) -> None:
        self.run = run
        self.config = config
        self.speedometer = speedometer
        self.pool = pool if speedometer is not None else None
        self._lock = threading.Lock()
        self._written = queue.SimpleQueue()
        self._pending: set[Future] = set()
        self._timing: dict[str, Future] = {}
        self.on_timing = on_timing or (lambda member_id: None)

    def add(self, task: MemberTask, trained: TrainResult,
            ancestor: MemberRecord | None) -> list[MemberRecord]:
        """Record `task`'s trained member (`ancestor`: the ancestor's record, None for the
        ancestor): at once on one target; on a pool when its timing ends."""
        if self.pool is None:
            return [record_member(self.run, task, trained, ancestor, self.config, self.speedometer)]
        meter = self.speedometer
        if meter.model is None and meter.measure_every > 1:
            self._wait()
        record = member_record(task, trained, ancestor, self.config)
        with self._lock:
            plan = meter.plan(trained.genome, self.run.member_dir(task.id), task.ordinal,
                              self.config.target_fps, keeps_floor(record, ancestor, self.config),
                              shipped_metadata(trained.genome, record, self.run))
            timing = meter.cached(plan) if plan.timed else None
        if plan.timed and timing is None:
            earlier = self._timing.get(plan.key)
            future = self.pool.threads.submit(self._time, plan, trained, record, earlier)
            self._timing.setdefault(plan.key, future)
            self._pending.add(future)
            self.on_timing(task.id)
        else:
            self._write(plan, timing, trained, record)
        return self._collect()

    def finish(self) -> list[MemberRecord]:
        """Wait for every timing under way; the records written since the last call."""
        self._wait()
        return self._collect()

    def _time(self, plan: MeasurementPlan, trained: TrainResult, record: MemberRecord,
              earlier: Future | None) -> None:
        """On a pool thread: reuse the timing of `earlier` (the same architecture, timed for
        another member) or time on the next free device (a board that fails it after its
        retries passes it to another, until every board failed); then write the member."""
        if earlier is not None:
            wait([earlier])
            with self._lock:
                timing = self.speedometer.cached(plan)
            if timing is not None:
                self._write(plan, timing, trained, record)
                return
        failed = []
        for _ in self.pool.devices.devices:
            with self.pool.devices.lease(avoid=failed) as device:
                timing = self.speedometer.time_on(plan, device)
            if timing.fps is not None or self.pool.closing:
                break
            failed.append(device.name)
            with self._lock:
                self.run.event("bench_board_failed", member=plan.by, board=device.name,
                               error=timing.error)
        if timing.fps is None and len(failed) > 1:
            timing = replace(timing, boards_failed=tuple(failed))
        if self.pool.closing and timing.fps is None:
            return  # failed because the run is being stopped: timed again on resume
        self._write(plan, timing, trained, record)

    def _write(self, plan: MeasurementPlan, timing: Timing | None, trained: TrainResult,
               record: MemberRecord) -> None:
        with self._lock:
            if timing is not None:
                self.speedometer.store(plan, timing)
            record = save_member(self.run, trained,
                                 record.with_speed(self.speedometer.finish(plan, timing)))
        self._written.put(record)

    def _wait(self) -> None:
        wait(self._pending)

    def _collect(self) -> list[MemberRecord]:
        """The records written so far; a timing thread's error is raised here."""
        finished = {future for future in self._pending if future.done()}
        self._pending -= finished
        self._timing = {key: f for key, f in self._timing.items() if f not in finished}
        for future in finished:
            future.result()
        records = []
        while not self._written.empty():
            records.append(self._written.get())
        return records
