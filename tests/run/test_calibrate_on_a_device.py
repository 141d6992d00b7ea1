import json

from jetsynth.calibration import model as model_module
from jetsynth.calibration.model import load_model
from jetsynth.run import calibrate as calibrate_module
from jetsynth.run.calibrate import calibrate


def test_a_device_is_calibrated_through_the_deploy_path(local_device, tmp_path, monkeypatch):
    # three networks are enough to exercise the deploy path (a real model wants eight or more)
    monkeypatch.setattr(calibrate_module, "MIN_SAMPLES", 3)
    monkeypatch.setattr(model_module, "MIN_SAMPLES", 3)
    progress = []
    model, path = calibrate(local_device, "fp16", batch=1, seconds=0.05, archs=("lenet5",), count=3,
                            folder=tmp_path, progress=lambda sample, done, total: progress.append(done))
    assert path == tmp_path / "local.json" and load_model(path) == model
    assert model.device == "local" and model.backend == "local:deploy" and model.samples == 3
    assert progress == [1, 2, 3]
    lines = (tmp_path / "local.measurements.jsonl").read_text().splitlines()
    assert all(json.loads(line)["value"]["backend"] == "local:onnxruntime" for line in lines)
    assert all(json.loads(line)["key"].endswith(":device:local:fp16:b1") for line in lines)
