"""jetsynth: evolutionary synthesis of small, fast neural networks for NVIDIA Jetson devices."""

from importlib.metadata import PackageNotFoundError, version

from .calibration import LatencyModel, calibrate, load_model
from .calibration.profiles import PROFILES, DeviceProfile
from .compact import Compacted, compact, expand_state, propagate_dead
from .config import EvolveConfig
from .data import Dataset, DataSpec, load_dataset
from .deploy import DeployOptions, deploy, deploy_many, probe
from .devices import Device, load_devices, resolve_device
from .encoding import cluster_probability, synapse_probability, truncate
from .environment import adaptive_keep, layer_factors, layer_targets
from .errors import JetsynthError
from .evolve import evolve
from .frontier import frontier_rows, pareto_front
from .genome import Genome, Lineage, ancestor_genome, load_genome, save_genome
from .mating import align, environmental_factor, mate_product, mate_sum, rate_for_factor
from .metrics import efficiency, size_metrics
from .models import ARCHITECTURES, build_model
from .network import Layer, chain_layers
from .report import summary
from .selection import SelectionConfig, select_parents
from .similarity import average_overlap, cluster_presence, overlap, overlap_matrix
from .ssh import SshOptions
from .synthesis import SynthesisConfig, synthesize
from .train import TrainConfig, TrainResult, train_genome
from .trt import build as build_engine

try:
    __version__ = version("jetsynth")
except PackageNotFoundError:
    __version__ = "0.0.0+unknown"

__all__ = [
    "ARCHITECTURES",
    "Compacted",
    "DataSpec",
    "Dataset",
    "DeployOptions",
    "Device",
    "DeviceProfile",
    "EvolveConfig",
    "Genome",
    "JetsynthError",
    "LatencyModel",
    "Layer",
    "Lineage",
    "PROFILES",
    "SelectionConfig",
    "SshOptions",
    "SynthesisConfig",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "adaptive_keep",
    "align",
    "ancestor_genome",
    "average_overlap",
    "build_engine",
    "build_model",
    "calibrate",
    "chain_layers",
    "cluster_presence",
    "cluster_probability",
    "compact",
    "deploy",
    "deploy_many",
    "efficiency",
    "environmental_factor",
    "evolve",
    "expand_state",
    "frontier_rows",
    "layer_factors",
    "layer_targets",
    "load_dataset",
    "load_devices",
    "load_genome",
    "load_model",
    "mate_product",
    "mate_sum",
    "overlap",
    "overlap_matrix",
    "pareto_front",
    "probe",
    "propagate_dead",
    "rate_for_factor",
    "resolve_device",
    "save_genome",
    "select_parents",
    "size_metrics",
    "summary",
    "synapse_probability",
    "synthesize",
    "train_genome",
    "truncate",
]
