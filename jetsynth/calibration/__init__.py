"""Device latency calibration: what jetsynth knows about each board (profiles), what it reads of
a network (per-layer work), and the fitted model that predicts a network's latency on a device.

Names are imported on first use: the device commands read the profiles without importing torch."""

from importlib import import_module

_PUBLIC = {
    "calibrate": ".procedure",
    "default_path": ".model",
    "DeviceProfile": ".profiles",
    "disagreements": ".profiles",
    "export_variant": ".sweep",
    "FEATURES": ".features",
    "features": ".features",
    "fit": ".model",
    "get_profile": ".profiles",
    "LatencyModel": ".model",
    "layer_work": ".features",
    "LayerWork": ".features",
    "load_model": ".model",
    "model_work": ".features",
    "PROFILES": ".profiles",
    "Sample": ".procedure",
    "sweep": ".procedure",
    "Variant": ".sweep",
    "variant_genome": ".sweep",
    "variants": ".sweep",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'jetsynth.calibration' has no attribute '{name}'")
    value = getattr(import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value
    return value
