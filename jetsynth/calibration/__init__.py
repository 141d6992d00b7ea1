"""Device latency model: what jetsynth reads of a network (per-layer work), the variants it
times to learn a device, and the fitted model that predicts a network's latency on a device.
(The procedure that times them on a device is `jetsynth.run.calibrate`; the boards' facts are
`jetsynth.devices.profiles`.)

Names are imported on first use: the device commands read the profiles without importing torch."""

from importlib import import_module

_PUBLIC = {
    "default_path": "jetsynth.calibration.model",
    "export_variant": "jetsynth.calibration.sweep",
    "FEATURES": "jetsynth.calibration.features",
    "features": "jetsynth.calibration.features",
    "fit": "jetsynth.calibration.model",
    "LatencyModel": "jetsynth.calibration.model",
    "layer_work": "jetsynth.calibration.features",
    "LayerWork": "jetsynth.calibration.features",
    "load_model": "jetsynth.calibration.model",
    "model_work": "jetsynth.calibration.features",
    "Variant": "jetsynth.calibration.sweep",
    "variant_genome": "jetsynth.calibration.sweep",
    "variants": "jetsynth.calibration.sweep",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'jetsynth.calibration' has no attribute '{name}'")
    value = getattr(import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value
    return value
