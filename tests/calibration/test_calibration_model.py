import json
from pathlib import Path

import numpy as np
import pytest

from jetsynth.calibration.features import FEATURES, LayerWork
from jetsynth.calibration.model import (
    FORMAT_VERSION,
    HOLDOUT_EVERY,
    MIN_SAMPLES,
    LatencyModel,
    default_path,
    fit,
    fit_coefficients,
    load_model,
    relative_errors,
)
from jetsynth.errors import JetsynthError

TRUE_COEFFICIENTS = np.array([2e-5, 1e-6, 0.0, 3e-11, 5e-12, 0.0, 2e-9])


def synthetic_vectors(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([
        np.ones(count),
        rng.integers(5, 40, count),
        rng.uniform(1e3, 1e6, count),
        rng.uniform(1e5, 1e8, count),
        rng.uniform(1e3, 1e6, count),
        rng.uniform(1e4, 1e6, count),
        rng.uniform(1e3, 1e5, count),
    ])


def hand_model(**changes) -> LatencyModel:
    fields = {"device": "jetson", "backend": "jetson:trt", "precision": "fp16", "batch": 4,
              "coefficients": (1e-3, 1e-4, 1e-6, 1e-7, 1e-7, 1e-6, 1e-6), "samples": 12,
              "error": {"all": {"median": 0.05, "max": 0.2, "count": 12}}}
    return LatencyModel(**{**fields, **changes})


HAND_LAYERS = [
    LayerWork("conv", "Conv", macs=100, in_channels=1, out_channels=2, im2col=50, outputs=200, weights=20),
    LayerWork("fc", "Gemm", macs=30, in_channels=10, out_channels=3, im2col=0, outputs=3, weights=33),
]


def test_fit_recovers_known_coefficients_from_noiseless_data():
    vectors = synthetic_vectors(12)
    estimated = fit_coefficients(vectors, vectors @ TRUE_COEFFICIENTS)
    np.testing.assert_allclose(estimated, TRUE_COEFFICIENTS, rtol=1e-9, atol=1e-20)


def test_coefficients_stay_non_negative_where_least_squares_would_go_negative():
    vectors = synthetic_vectors(16, seed=1)
    signed = TRUE_COEFFICIENTS * [1, -0.1, 1, 1, 1, 1, 1]
    seconds = vectors @ signed
    assert np.all(seconds > 0)
    assert np.linalg.lstsq(vectors / seconds[:, None], np.ones(16), rcond=None)[0][1] < 0
    assert np.all(fit_coefficients(vectors, seconds) >= 0)


def test_relative_errors_by_hand():
    errors = relative_errors(np.array([1.0, 2.0]), np.array([[1.0, 1.0], [2.0, 0.0]]), np.array([4.0, 1.0]))
    np.testing.assert_allclose(errors, [abs(3 - 4) / 4, abs(2 - 1) / 1])


def test_fit_is_exact_on_noiseless_data():
    vectors = synthetic_vectors(12)
    model = fit(vectors, vectors @ TRUE_COEFFICIENTS, "dev", "ort-cpu", "fp16", 2, profile="nano")
    assert model.error["all"]["count"] == 12 and model.error["all"]["max"] < 1e-9
    assert model.error["holdout"]["count"] == 12 // HOLDOUT_EVERY and model.error["holdout"]["max"] < 1e-9
    assert (model.device, model.backend, model.precision, model.batch, model.samples, model.profile) == (
        "dev", "ort-cpu", "fp16", 2, 12, "nano")
    assert model.features == FEATURES and len(model.coefficients) == len(FEATURES)


def test_holdout_error_is_scored_on_every_fourth_sample():
    vectors = synthetic_vectors(12)
    seconds = vectors @ TRUE_COEFFICIENTS
    assert HOLDOUT_EVERY == 4
    seconds[[3, 7, 11]] *= [2.0, 4.0, 1.25]
    model = fit(vectors, seconds, "dev", "ort-cpu", "fp16", 1)
    assert model.error["holdout"]["count"] == 3
    assert model.error["holdout"]["median"] == pytest.approx(abs(1 - 2.0) / 2.0)
    assert model.error["holdout"]["max"] == pytest.approx(abs(1 - 4.0) / 4.0)
    assert model.error["all"]["count"] == 12 and model.error["all"]["max"] > 0.1


def test_no_holdout_when_too_few_samples_would_remain():
    vectors = synthetic_vectors(MIN_SAMPLES)
    model = fit(vectors, vectors @ TRUE_COEFFICIENTS, "dev", "ort-cpu", "fp16", 1)
    assert set(model.error) == {"all"} and model.samples == MIN_SAMPLES


def test_fitting_fewer_than_min_samples_is_refused():
    vectors = synthetic_vectors(MIN_SAMPLES - 1)
    assert MIN_SAMPLES == len(FEATURES) + 1 == 8
    with pytest.raises(JetsynthError, match="at least 8 measured networks, got 7"):
        fit(vectors, vectors @ TRUE_COEFFICIENTS, "dev", "ort-cpu", "fp16", 1)


def test_non_positive_latencies_are_refused():
    vectors = synthetic_vectors(10)
    seconds = vectors @ TRUE_COEFFICIENTS
    seconds[4] = 0.0
    with pytest.raises(JetsynthError, match="a measured latency is not positive.*time the networks again"):
        fit_coefficients(vectors, seconds)


def test_seconds_and_fps_by_hand():
    model = hand_model()
    per_query = (1e-3 * 1 + 1e-4 * 2 + 1e-6 * (20 + 33) + 1e-7 * 4 * 100 + 1e-7 * 4 * 30
                 + 1e-6 * 4 * 50 + 1e-6 * 4 * (200 + 3))
    assert model.fps(HAND_LAYERS) == pytest.approx(4 / per_query, rel=1e-12)
    per_image_query = 1e-3 + 1e-4 * 2 + 1e-6 * 53 + 1e-7 * 100 + 1e-7 * 30 + 1e-6 * 50 + 1e-6 * 203
    assert model.fps(HAND_LAYERS, batch=1) == pytest.approx(1 / per_image_query, rel=1e-12)
    assert model.seconds(np.ones(len(FEATURES))) == pytest.approx(sum(model.coefficients))


def test_check_matches_accepts_the_calibrated_settings():
    hand_model().check_matches("jetson", "fp16", 4, "calibration/jetson.json")


def test_check_matches_refuses_another_device():
    with pytest.raises(JetsynthError, match="calibrated on jetson, not ort-cpu.*--latency-model none"):
        hand_model().check_matches("ort-cpu", "fp16", 4, "calibration/jetson.json")


@pytest.mark.parametrize(("precision", "batch"), [("fp32", 4), ("fp16", 1)])
def test_check_matches_refuses_other_settings(precision, batch):
    with pytest.raises(JetsynthError) as caught:
        hand_model().check_matches("jetson", precision, batch, "calibration/jetson.json")
    message = str(caught.value)
    assert message.startswith("calibration/jetson.json was calibrated at fp16, batch 4")
    assert f"`jetsynth calibrate jetson --precision {precision} --batch {batch}`" in message


def test_save_and_load_round_trip(tmp_path):
    model = hand_model(profile="nano", created="2024-01-01T00:00:00+0000", jetsynth_version="1.2.3")
    path = model.save(tmp_path / "deep" / "jetson.json")
    assert json.loads(path.read_text())["format"] == FORMAT_VERSION
    assert load_model(path) == model


def test_default_path():
    assert default_path("nano").as_posix() == "calibration/nano.json"
    assert default_path("nano", Path("elsewhere")) == Path("elsewhere/nano.json")


def _written(tmp_path, text):
    path = tmp_path / "model.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such latency model; create one with `jetsynth calibrate DEVICE`"),
        ("{not json", "is not a latency model \\(not JSON\\)"),
        ('{"device": "nano"}', "is not a jetsynth latency model"),
        ("[1, 2]", "is not a jetsynth latency model"),
        ('{"format": 2}', "has latency-model format 2; this jetsynth reads format 1"),
        ('{"format": 1, "features": ["query"]}', "uses other features than this jetsynth"),
        (json.dumps({"format": 1, "features": list(FEATURES), "device": "nano"}),
         "is not a valid latency model"),
    ],
)
def test_load_model_refuses_a_bad_file_with_one_clear_error(tmp_path, content, message):
    path = tmp_path / "model.json" if content is None else _written(tmp_path, content)
    with pytest.raises(JetsynthError, match=message) as caught:
        load_model(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)
