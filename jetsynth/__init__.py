"""jetsynth: evolutionary synthesis of small, fast neural networks for NVIDIA Jetson devices.

The public names below are imported on first use, so `jetsynth --help`, `jetsynth devices` and
`jetsynth deploy` start without importing torch."""

from importlib import import_module

from .version import __version__ as __version__

_PUBLIC = {
    "adaptive_keep": (".environment", "adaptive_keep"),
    "align": (".mating", "align"),
    "ancestor_genome": (".genome", "ancestor_genome"),
    "ARCHITECTURES": (".models", "ARCHITECTURES"),
    "average_overlap": (".similarity", "average_overlap"),
    "build_engine": (".trt", "build"),
    "build_model": (".models", "build_model"),
    "calibrate": (".calibration", "calibrate"),
    "cluster_presence": (".similarity", "cluster_presence"),
    "cluster_probability": (".encoding", "cluster_probability"),
    "compact": (".compact", "compact"),
    "Compacted": (".compact", "Compacted"),
    "Dataset": (".dataset", "Dataset"),
    "DataSpec": (".dataset", "DataSpec"),
    "deploy": (".deploy", "deploy"),
    "deploy_many": (".deploy", "deploy_many"),
    "DeployOptions": (".deploy", "DeployOptions"),
    "Device": (".devices", "Device"),
    "DeviceProfile": (".calibration.profiles", "DeviceProfile"),
    "efficiency": (".metrics", "efficiency"),
    "environmental_factor": (".mating", "environmental_factor"),
    "evolve": (".evolve", "evolve"),
    "EvolveConfig": (".config", "EvolveConfig"),
    "expand_state": (".compact", "expand_state"),
    "frontier_rows": (".frontier", "frontier_rows"),
    "Genome": (".genome", "Genome"),
    "JetsynthError": (".errors", "JetsynthError"),
    "LatencyModel": (".calibration", "LatencyModel"),
    "Layer": (".structure", "Layer"),
    "layer_factors": (".environment", "layer_factors"),
    "layer_targets": (".environment", "layer_targets"),
    "Lineage": (".genome", "Lineage"),
    "load_dataset": (".data", "load_dataset"),
    "load_devices": (".devices", "load_devices"),
    "load_genome": (".genome", "load_genome"),
    "load_model": (".calibration", "load_model"),
    "macs": (".structure", "macs"),
    "mate_product": (".mating", "mate_product"),
    "mate_sum": (".mating", "mate_sum"),
    "overlap": (".similarity", "overlap"),
    "overlap_matrix": (".similarity", "overlap_matrix"),
    "pareto_front": (".frontier", "pareto_front"),
    "probe": (".deploy", "probe"),
    "PROFILES": (".calibration.profiles", "PROFILES"),
    "rate_for_factor": (".mating", "rate_for_factor"),
    "resolve_device": (".devices", "resolve_device"),
    "save_genome": (".genome", "save_genome"),
    "select_parents": (".selection", "select_parents"),
    "SelectionConfig": (".selection", "SelectionConfig"),
    "settle": (".structure", "settle"),
    "size_metrics": (".metrics", "size_metrics"),
    "SshOptions": (".ssh", "SshOptions"),
    "summary": (".report", "summary"),
    "synapse_probability": (".encoding", "synapse_probability"),
    "SynthesisConfig": (".synthesis", "SynthesisConfig"),
    "synthesize": (".synthesis", "synthesize"),
    "Topology": (".structure", "Topology"),
    "trace": (".structure", "trace"),
    "train_genome": (".train", "train_genome"),
    "TrainConfig": (".train", "TrainConfig"),
    "TrainResult": (".train", "TrainResult"),
    "truncate": (".encoding", "truncate"),
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'jetsynth' has no attribute '{name}'")
    module, attribute = _PUBLIC[name]
    value = getattr(import_module(module, __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
