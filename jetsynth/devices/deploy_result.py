"""What a deployment gives back for one device, typed while it travels to the deploy command,
evolution's device timings and the tools; `to_json` gives the object `deploy --json` prints.

The agent's own reply (`jetsynth/agent`, a program of its own on the device) stays the JSON it
sent, in `agent`: the figures every reader needs are read from it by name here, once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeployTarget:
    """The device a result is for: its inventory `name`, `destination` (user@host), SSH `port`
    and its device profile as the profile's JSON (None: no profile)."""

    name: str
    destination: str
    port: int | None
    profile: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "destination": self.destination, "port": self.port,
                "profile": self.profile}


@dataclass(frozen=True)
class DeployResult:
    """One device's deployment: the `agent`'s reply (build and timing on the device), the
    `target`, the copied `model`'s facts, host-side seconds per step (`host_seconds`: connect,
    prepare, copy, agent, cleanup, total), the device's disagreements with its profile
    (`warnings`) and, in words, what produced the figures (`produced_by`)."""

    agent: dict[str, Any]
    target: DeployTarget
    model: dict[str, Any]
    host_seconds: dict[str, float]
    warnings: tuple[str, ...]
    produced_by: str

    @property
    def fps(self) -> float:
        """Images per second, the median of the agent's trials."""
        return self.agent["fps"]

    @property
    def batch(self) -> int:
        return self.agent["batch"]

    @property
    def backend(self) -> str:
        """'tensorrt', 'trtexec' or 'onnxruntime'."""
        return self.agent["backend"]

    @property
    def precision(self) -> str:
        return self.agent["precision"]

    @property
    def latency_ms(self) -> dict[str, float]:
        """Latency per query (one batch) in ms: mean, p50, p90 (when measured), p99."""
        return self.agent["latency_ms"]

    @property
    def build_seconds(self) -> float:
        return self.agent["build_seconds"]

    @property
    def engine_bytes(self) -> int | None:
        """The TensorRT engine's size; None under onnxruntime."""
        return self.agent.get("engine_bytes")

    @property
    def power(self) -> dict[str, Any] | None:
        """The board's power summary during the timing; None without a sensor."""
        return self.agent.get("power")

    @property
    def device(self) -> dict[str, Any]:
        """The device's facts as the agent found them (JetPack, TensorRT, GPU...)."""
        return self.agent.get("device", {})

    def to_json(self) -> dict[str, Any]:
        return {**self.agent, "target": self.target.to_json(), "model": self.model,
                "host_seconds": self.host_seconds, "warnings": list(self.warnings),
                "produced_by": self.produced_by}


@dataclass(frozen=True)
class DeployFailure:
    """A device that could not be deployed to: its `name`, `destination` (None when the name
    is in no inventory) and the one-line `error`; the other devices still finish."""

    name: str
    error: str
    destination: str | None = None

    def to_json(self) -> dict[str, Any]:
        target: dict[str, Any] = {"name": self.name}
        if self.destination is not None:
            target["destination"] = self.destination
        return {"target": target, "error": self.error}
