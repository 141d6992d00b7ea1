"""One timing of a member's network, as measurement makes it and the cache and member records
keep it: typed while it travels between the measurement, the timing pool and the record, and
converted to the JSON object of `measurements.jsonl` and of a member's `bench` only at those
files (`to_json`, `from_json`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

JSON_ORDER = ("fps", "fps_iqr", "fps_trials", "retimed", "backend", "threads", "produced_by",
              "latency_ms", "device_precision", "build_seconds", "engine_bytes", "power",
              "reference_fps", "drift", "drift_retimed", "error", "attempts", "boards_failed",
              "cached")
"""The order of the keys in the JSON object: the order in which measurement fills them in, so
that a timing written now reads as those written before it were."""
_ALWAYS = ("fps", "backend")
_TUPLES = ("fps_iqr", "fps_trials", "boards_failed")


@dataclass(frozen=True)
class Timing:
    """How fast a member's network ran, or why it was not timed.

    `fps` images per second, the median of the trials (None: the device could not time it or
    nothing was timed); `backend` what timed it ('ort-cpu', 'DEVICE:BACKEND', or the device's
    name when it failed). Timed here (`time_here`): `fps_iqr` the interquartile range of the
    trials (q1, q3, images/s), `fps_trials` each trial's images/s, `retimed` trials added because
    the first disagreed, `threads`; with a reference network, `reference_fps` its images/s now and
    `drift` (its images/s now over at the start; 1: the host kept its speed), `drift_retimed`
    whether the member was timed again for drift. Timed on a device: `device_precision` the
    engine's precision, `build_seconds` (s) and `engine_bytes` of its engine, `power` the board's
    power summary (None: no sensor). Both: `produced_by` in words, `latency_ms` latency per query
    in ms. A failed device: `error` the last attempt's message, `attempts`, `boards_failed` the
    pool's boards that all failed it. `cached`: reused from another member's timing. `extra`
    holds keys an older jetsynth wrote that this one does not type; `written` the keys written
    even when empty, in their order: those read (a timing read and written back is the same
    line), or those a kind of timing always writes."""

    fps: float | None
    backend: str | None = None
    fps_iqr: tuple[float, float] | None = None
    fps_trials: tuple[float, ...] | None = None
    retimed: int | None = None
    threads: int | None = None
    produced_by: str | None = None
    latency_ms: dict[str, float] | None = None
    device_precision: str | None = None
    build_seconds: float | None = None
    engine_bytes: int | None = None
    power: dict[str, Any] | None = None
    reference_fps: float | None = None
    drift: float | None = None
    drift_retimed: bool = False
    error: str | None = None
    attempts: int | None = None
    boards_failed: tuple[str, ...] | None = None
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    written: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Timing:
        """From a JSON object as `to_json` (or an older jetsynth) wrote it; lists become tuples."""
        values = {k: tuple(v) if k in _TUPLES and isinstance(v, list) else v
                  for k, v in data.items() if k in JSON_ORDER}
        return cls(**values, extra={k: v for k, v in data.items() if k not in JSON_ORDER},
                   written=tuple(data))

    def to_json(self) -> dict[str, Any]:
        """The JSON object: the keys written when it was read, then those holding something
        (a value left at its default, None or False, is not written)."""
        defaults = {f.name: f.default for f in fields(self)}
        out: dict[str, Any] = {}
        for key in JSON_ORDER:
            value = getattr(self, key)
            if key in _ALWAYS or key in self.written or value != defaults[key]:
                out[key] = list(value) if key in _TUPLES and value is not None else value
        out.update(self.extra)
        rank = {key: i for i, key in enumerate(self.written)}
        return dict(sorted(out.items(), key=lambda item: rank.get(item[0], len(rank))))
