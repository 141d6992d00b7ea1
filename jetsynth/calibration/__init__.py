"""Device latency calibration: what jetsynth knows about each board (profiles), what it reads of
a network (per-layer work), and the fitted model that predicts a network's latency on a device."""

from .features import FEATURES, LayerWork, features, layer_work, model_work
from .model import LatencyModel, default_path, fit, load_model
from .procedure import Sample, calibrate, sweep
from .profiles import PROFILES, DeviceProfile, disagreements, get_profile
from .sweep import Variant, export_variant, variant_genome, variants

__all__ = [
    "FEATURES",
    "PROFILES",
    "DeviceProfile",
    "LatencyModel",
    "LayerWork",
    "Sample",
    "Variant",
    "calibrate",
    "default_path",
    "disagreements",
    "export_variant",
    "features",
    "fit",
    "get_profile",
    "layer_work",
    "load_model",
    "model_work",
    "sweep",
    "variant_genome",
    "variants",
]
