"""A device's latency model: seconds per query as a non-negative weighted sum of the network's
features (see `features.FEATURES`), fitted to measured latencies by least squares on *relative*
error, because FPS targets are ratios and a 20 µs network matters as much as a 2 ms one.

Non-negative weights keep every term a cost (more work never predicts a faster network), which
keeps predictions sane outside the sweep. Stored as JSON with a format number; a file from a
newer format is refused rather than misread.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from jetsynth.calibration.features import FEATURES, LayerWork, features
from jetsynth.errors import JetsynthError
from jetsynth.storage import RefusedJSON, atomic_write, read_json

FORMAT_VERSION = 1
HOLDOUT_EVERY = 4
"""Every fourth sample (by sweep order) is held out to estimate the error on unseen networks."""
MIN_SAMPLES = len(FEATURES) + 1
DEFAULT_DIR = Path("calibration")


@dataclass(frozen=True)
class LatencyModel:
    """Predicts a network's latency on one device. `coefficients`: seconds per unit of each
    feature in `features`; `batch` and `precision`: what the calibration timed (predictions
    are only trusted for the same); `error`: relative errors of the fit (median and max, on the
    held-out samples and on all of them)."""

    device: str
    backend: str
    precision: str
    batch: int
    coefficients: tuple[float, ...]
    samples: int
    error: dict
    features: tuple[str, ...] = FEATURES
    profile: str | None = None
    created: str = ""
    jetsynth_version: str = ""

    def seconds(self, vector: np.ndarray) -> float:
        """Predicted seconds per query for a feature vector."""
        return float(np.dot(self.coefficients, vector))

    def fps(self, layers: list[LayerWork], batch: int | None = None) -> float:
        """Predicted images per second of a network (its per-layer work) at `batch`."""
        batch = self.batch if batch is None else batch
        return batch / max(self.seconds(features(layers, batch)), 1e-12)

    def check_matches(self, device: str, precision: str, batch: int, source: str) -> None:
        """A clear error when this model was calibrated on another device or for other settings
        than a run uses."""
        if device != self.device:
            raise JetsynthError(f"{source} was calibrated on {self.device}, not {device}: run "
                                f"`jetsynth calibrate {device}` or give --latency-model none")
        if precision != self.precision or batch != self.batch:
            raise JetsynthError(
                f"{source} was calibrated at {self.precision}, batch {self.batch}; this run times "
                f"{precision} at batch {batch}: run `jetsynth calibrate {self.device} --precision "
                f"{precision} --batch {batch}`"
            )

    def as_dict(self) -> dict:
        out = asdict(self)
        out["format"] = FORMAT_VERSION
        return out

    def save(self, path: Path, root: Path | None = None) -> Path:
        """Write the model as JSON to `path`; `root`: the folder it belongs in (storage.confine)."""
        path = Path(path)
        text = json.dumps(self.as_dict(), indent=2) + "\n"
        atomic_write(path, lambda tmp: tmp.write_text(text), root)
        return path


def load_model(path: Path) -> LatencyModel:
    """A latency model file, with one clear line for a missing, corrupt or foreign one."""
    path = Path(path)
    if not path.is_file():
        raise JetsynthError(f"{path}: no such latency model; create one with `jetsynth calibrate DEVICE`")
    try:
        data = read_json(path)
    except OSError as exc:
        raise JetsynthError(f"{path} cannot be read ({exc}); give a latency model file") from None
    except ValueError as exc:
        why = str(exc) if isinstance(exc, RefusedJSON) else "not JSON"
        raise JetsynthError(f"{path} is not a latency model ({why}); calibrate again") from None
    if not isinstance(data, dict) or "format" not in data:
        raise JetsynthError(f"{path} is not a jetsynth latency model; calibrate again")
    if data["format"] != FORMAT_VERSION:
        raise JetsynthError(f"{path} has latency-model format {data['format']}; this jetsynth reads "
                            f"format {FORMAT_VERSION}: calibrate again or upgrade jetsynth")
    if tuple(data.get("features", ())) != FEATURES:
        raise JetsynthError(f"{path} uses other features than this jetsynth; calibrate again")
    try:
        return LatencyModel(**{k: tuple(v) if k in ("coefficients", "features") else v
                               for k, v in data.items() if k != "format"})
    except TypeError as exc:
        raise JetsynthError(f"{path} is not a valid latency model ({exc}); calibrate again") from None


def default_path(device: str, folder: Path = DEFAULT_DIR) -> Path:
    """Where `jetsynth calibrate DEVICE` writes, and where evolve looks: calibration/DEVICE.json."""
    return Path(folder) / f"{device}.json"


def fit_coefficients(vectors: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Non-negative coefficients c minimising Σ ((vectors·c − seconds) / seconds)²."""
    from sklearn.linear_model import LinearRegression

    vectors = np.asarray(vectors, dtype=float)
    seconds = np.asarray(seconds, dtype=float)
    if len(seconds) < MIN_SAMPLES:
        raise JetsynthError(f"a latency model needs at least {MIN_SAMPLES} measured networks, "
                            f"got {len(seconds)}")
    if np.any(seconds <= 0):
        raise JetsynthError("a measured latency is not positive (a broken timing?); time the networks "
                            "again")
    scale = vectors.max(axis=0)
    scale[scale == 0] = 1.0
    model = LinearRegression(positive=True, fit_intercept=False)
    model.fit(vectors / scale, seconds, sample_weight=1.0 / seconds**2)
    return model.coef_ / scale


def relative_errors(coefficients: np.ndarray, vectors: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """|predicted − measured| / measured for each sample."""
    return np.abs(np.asarray(vectors) @ coefficients - seconds) / seconds


def _summary(errors: np.ndarray) -> dict:
    return {"median": float(np.median(errors)), "max": float(np.max(errors)), "count": len(errors)}


def fit(vectors: np.ndarray, seconds: np.ndarray, device: str, backend: str, precision: str,
        batch: int, profile: str | None = None) -> LatencyModel:
    """Fit on all samples; the held-out error comes from a second fit without every
    HOLDOUT_EVERY-th sample, scored on those (an estimate for networks the sweep never saw)."""
    from jetsynth.version import __version__

    vectors = np.asarray(vectors, dtype=float)
    seconds = np.asarray(seconds, dtype=float)
    coefficients = fit_coefficients(vectors, seconds)
    error = {"all": _summary(relative_errors(coefficients, vectors, seconds))}
    held = np.arange(len(seconds)) % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
    if (~held).sum() >= MIN_SAMPLES and held.any():
        partial = fit_coefficients(vectors[~held], seconds[~held])
        error["holdout"] = _summary(relative_errors(partial, vectors[held], seconds[held]))
    return LatencyModel(
        device=device, backend=backend, precision=precision, batch=batch,
        coefficients=tuple(float(c) for c in coefficients), samples=len(seconds), error=error,
        profile=profile, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), jetsynth_version=__version__,
    )
