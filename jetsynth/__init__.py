"""jetsynth: evolutionary synthesis of small, fast neural networks for NVIDIA Jetson devices.

The public names below are imported on first use, so `jetsynth --help`, `jetsynth devices` and
`jetsynth deploy` start without importing torch."""

from importlib import import_module

from jetsynth.version import __version__ as __version__

_PUBLIC = {
    "adaptive_keep": ("jetsynth.core.environment", "adaptive_keep"),
    "align": ("jetsynth.core.mating", "align"),
    "ancestor_genome": ("jetsynth.core.genome", "ancestor_genome"),
    "ARCHITECTURES": ("jetsynth.nn.models", "ARCHITECTURES"),
    "average_overlap": ("jetsynth.core.similarity", "average_overlap"),
    "build_engine": ("jetsynth.ship.trt", "build"),
    "build_model": ("jetsynth.nn.models", "build_model"),
    "calibrate": ("jetsynth.run.calibrate", "calibrate"),
    "cluster_presence": ("jetsynth.core.similarity", "cluster_presence"),
    "cluster_probability": ("jetsynth.core.encoding", "cluster_probability"),
    "compact": ("jetsynth.nn.compact", "compact"),
    "Compacted": ("jetsynth.nn.compact", "Compacted"),
    "Dataset": ("jetsynth.data.dataset", "Dataset"),
    "DataSpec": ("jetsynth.data.dataset", "DataSpec"),
    "deploy": ("jetsynth.devices.deploy", "deploy"),
    "deploy_many": ("jetsynth.devices.deploy", "deploy_many"),
    "DeployOptions": ("jetsynth.devices.deploy", "DeployOptions"),
    "DeployResult": ("jetsynth.devices.deploy_result", "DeployResult"),
    "Device": ("jetsynth.devices.inventory", "Device"),
    "DeviceProfile": ("jetsynth.devices.profiles", "DeviceProfile"),
    "efficiency": ("jetsynth.core.metrics", "efficiency"),
    "environmental_factor": ("jetsynth.core.mating", "environmental_factor"),
    "evolve": ("jetsynth.api", "evolve"),
    "EvolveConfig": ("jetsynth.run.config", "EvolveConfig"),
    "expand_state": ("jetsynth.nn.compact", "expand_state"),
    "frontier_rows": ("jetsynth.core.frontier", "frontier_rows"),
    "FrontierRow": ("jetsynth.core.frontier", "FrontierRow"),
    "Genome": ("jetsynth.core.genome", "Genome"),
    "JetsynthError": ("jetsynth.errors", "JetsynthError"),
    "LatencyModel": ("jetsynth.calibration.model", "LatencyModel"),
    "Layer": ("jetsynth.nn.structure", "Layer"),
    "layer_factors": ("jetsynth.core.environment", "layer_factors"),
    "layer_targets": ("jetsynth.core.environment", "layer_targets"),
    "Lineage": ("jetsynth.core.genome", "Lineage"),
    "load_dataset": ("jetsynth.data.load", "load_dataset"),
    "load_devices": ("jetsynth.devices.inventory", "load_devices"),
    "load_genome": ("jetsynth.core.genome", "load_genome"),
    "load_model": ("jetsynth.calibration.model", "load_model"),
    "macs": ("jetsynth.nn.structure", "macs"),
    "Member": ("jetsynth.api", "Member"),
    "mate_product": ("jetsynth.core.mating", "mate_product"),
    "mate_sum": ("jetsynth.core.mating", "mate_sum"),
    "open_run": ("jetsynth.api", "open_run"),
    "overlap": ("jetsynth.core.similarity", "overlap"),
    "overlap_matrix": ("jetsynth.core.similarity", "overlap_matrix"),
    "pareto_front": ("jetsynth.core.frontier", "pareto_front"),
    "probe": ("jetsynth.devices.deploy", "probe"),
    "ProgressEvent": ("jetsynth.api", "ProgressEvent"),
    "PROFILES": ("jetsynth.devices.profiles", "PROFILES"),
    "rate_for_factor": ("jetsynth.core.mating", "rate_for_factor"),
    "resolve_device": ("jetsynth.devices.inventory", "resolve_device"),
    "save_genome": ("jetsynth.core.genome", "save_genome"),
    "Run": ("jetsynth.api", "Run"),
    "select_parents": ("jetsynth.core.selection", "select_parents"),
    "SelectionConfig": ("jetsynth.core.selection", "SelectionConfig"),
    "settle": ("jetsynth.nn.structure", "settle"),
    "size_metrics": ("jetsynth.core.metrics", "size_metrics"),
    "SshOptions": ("jetsynth.devices.ssh", "SshOptions"),
    "summary": ("jetsynth.report.run_report", "summary"),
    "synapse_probability": ("jetsynth.core.encoding", "synapse_probability"),
    "SynthesisConfig": ("jetsynth.core.synthesis", "SynthesisConfig"),
    "synthesize": ("jetsynth.core.synthesis", "synthesize"),
    "Topology": ("jetsynth.nn.structure", "Topology"),
    "trace": ("jetsynth.nn.structure", "trace"),
    "train_genome": ("jetsynth.run.train", "train_genome"),
    "TrainConfig": ("jetsynth.run.train", "TrainConfig"),
    "TrainResult": ("jetsynth.run.train", "TrainResult"),
    "truncate": ("jetsynth.core.encoding", "truncate"),
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
