"""jetsynth: evolutionary synthesis of small, fast neural networks for NVIDIA Jetson devices."""

from importlib.metadata import PackageNotFoundError, version

from .compact import Compacted, compact, expand_state, propagate_dead
from .config import EvolveConfig
from .data import Dataset, DataSpec, load_dataset
from .encoding import cluster_probability, synapse_probability, truncate
from .environment import layer_factors, layer_targets
from .errors import JetsynthError
from .evolve import evolve
from .genome import Genome, Lineage, ancestor_genome, load_genome, save_genome
from .metrics import efficiency, size_metrics
from .models import ARCHITECTURES, build_model
from .network import Layer, chain_layers
from .report import summary
from .synthesis import SynthesisConfig, synthesize
from .train import TrainConfig, TrainResult, train_genome

try:
    __version__ = version("jetsynth")
except PackageNotFoundError:
    __version__ = "0.0.0+unknown"

__all__ = [
    "ARCHITECTURES",
    "Compacted",
    "DataSpec",
    "Dataset",
    "EvolveConfig",
    "Genome",
    "JetsynthError",
    "Layer",
    "Lineage",
    "SynthesisConfig",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "ancestor_genome",
    "build_model",
    "chain_layers",
    "cluster_probability",
    "compact",
    "efficiency",
    "evolve",
    "expand_state",
    "layer_factors",
    "layer_targets",
    "load_dataset",
    "load_genome",
    "propagate_dead",
    "save_genome",
    "size_metrics",
    "summary",
    "synapse_probability",
    "synthesize",
    "train_genome",
    "truncate",
]
