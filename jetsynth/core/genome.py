"""What an individual is: its ancestor's traced structure, its weights and synapse masks in the
ancestor's coordinates, the gene tags of its clusters, and its lineage.

Weights stay in ancestor coordinates (pruned synapses hold zero), so a cluster's position is its
origin; the tags make that identity explicit and survive any later re-indexing (compaction,
growth). Saved as safetensors (tensors) + JSON (everything else); nothing is pickled. The structure is
not saved: it is traced again from the architecture (`topology_for`), once per process.

Format 2 drops format 1's chain-layer list; the tensors are the same, so a format-1 genome loads.
"""

from __future__ import annotations

import json
import math
import struct
import weakref
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, load_file, save, save_file
from torch import nn

from jetsynth.errors import JetsynthError
from jetsynth.nn.finite import all_finite
from jetsynth.nn.models import Factory, check_input_shape, instantiate, resolve_factory
from jetsynth.nn.structure import Layer, Topology, row_alive, trace
from jetsynth.storage import atomic_write, read_json, write_json

FORMAT_VERSION = 2
PRECISIONS = ("fp32", "fp16")
"""Synaptic precisions: what training restricts the weights to, and what an export writes."""
READABLE_FORMATS = (1, 2)
TENSORS_FILE = "genome.safetensors"
META_FILE = "genome.json"
BLOB_HEADER = "jetsynth.core.genome"
MAX_SIDE = 65536
"""The largest image side preprocessing metadata may name (pixels)."""
MAX_NAME = 256
"""The longest class name preprocessing metadata may hold (characters)."""


@dataclass(frozen=True)
class Lineage:
    id: str
    generation: int
    member: int
    parents: tuple[str, ...] = ()


@dataclass
class Genome:
    topology: Topology
    state: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    tags: dict[str, torch.Tensor]
    lineage: Lineage
    precision: str = "fp32"
    extra: dict = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return self.topology.arch

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.topology.input_shape

    @property
    def num_classes(self) -> int:
        return self.topology.num_classes

    @property
    def layers(self) -> tuple[Layer, ...]:
        return self.topology.layers

    def build(self) -> nn.Module:
        """The ancestor-shaped network carrying this genome's (masked) weights."""
        model = self.topology.build()
        try:
            model.load_state_dict(self.state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
            raise JetsynthError(f"the saved weights of {self.lineage.id} do not fit {self.arch} "
                                f"({first}); its {TENSORS_FILE} is damaged or from another "
                                "architecture") from None
        return model

    def with_state(self, state: dict[str, torch.Tensor]) -> Genome:
        return replace(self, state=state)

    def with_masks(self, masks: dict[str, torch.Tensor], lineage: Lineage) -> Genome:
        """A copy with new masks applied: pruned weights and dead units' biases set to zero."""
        state = {k: v.clone() for k, v in self.state.items()}
        for layer in self.layers:
            mask = masks[layer.name]
            state[f"{layer.name}.weight"] = state[f"{layer.name}.weight"] * mask
            bias_key = f"{layer.name}.bias"
            if bias_key in state and layer is not self.topology.output:
                state[bias_key] = state[bias_key] * row_alive(mask, layer)
        return replace(self, state=state, masks=dict(masks), lineage=lineage)


def topology_for(arch: str, input_shape: tuple[int, int, int], num_classes: int,
                 factory: Factory | None = None) -> Topology:
    """The traced structure of `arch` for this input shape and class count. `factory`: the
    architecture resolved on the user's word; None builds only a built-in (a name read from a
    file never imports code: see `models.resolve_factory`)."""
    factory = factory or resolve_factory(arch, trusted=False)
    model = instantiate(factory, arch, input_shape, num_classes)
    topology = trace(model, arch, input_shape, num_classes, factory)
    return replace(topology, factory=lambda shape, classes: instantiate(factory, arch, shape, classes))


def ancestor_genome(arch: str, input_shape: tuple[int, int, int], num_classes: int, seed: int,
                    topology: Topology | None = None) -> Genome:
    """A freshly initialised ancestor: every synapse alive, one unique tag per (out, in) pair
    of every layer (for a depthwise conv, per filter). `topology`: the traced `arch`; None
    traces `arch` as the caller's own word (user code is imported)."""
    topology = topology or topology_for(arch, input_shape, num_classes,
                                        resolve_factory(arch, trusted=True))
    torch.manual_seed(seed)
    model = topology.build()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    masks = {layer.name: torch.ones_like(state[f"{layer.name}.weight"], dtype=torch.bool)
             for layer in topology.layers}
    tags, offset = {}, 0
    for layer in topology.layers:
        count = layer.out_units * layer.in_units
        tags[layer.name] = torch.arange(offset, offset + count).reshape(
            layer.out_units, layer.in_units
        )
        offset += count
    return Genome(
        topology=topology,
        state=state,
        masks=masks,
        tags=tags,
        lineage=Lineage(id="g01-m00", generation=1, member=0),
    )


def _flat_tensors(genome: Genome) -> dict[str, torch.Tensor]:
    tensors = {f"state/{k}": v.contiguous() for k, v in genome.state.items()}
    tensors.update({f"mask/{k}": v.contiguous() for k, v in genome.masks.items()})
    tensors.update({f"tag/{k}": v.contiguous() for k, v in genome.tags.items()})
    return tensors


def _header(genome: Genome) -> dict:
    return {
        "format": FORMAT_VERSION,
        "arch": genome.arch,
        "input_shape": list(genome.input_shape),
        "num_classes": genome.num_classes,
        "lineage": asdict(genome.lineage),
        "precision": genome.precision,
        "extra": genome.extra,
    }


def save_genome(genome: Genome, directory: Path, root: Path | None = None) -> None:
    """Write the genome into `directory`; `root`: the folder it belongs in (a run directory),
    which no link inside may lead out of (see storage.confine)."""
    directory = Path(directory)
    tensors = _flat_tensors(genome)
    atomic_write(directory / TENSORS_FILE, lambda tmp: save_file(tensors, str(tmp)), root)
    write_json(directory / META_FILE, _header(genome), root)


def genome_bytes(genome: Genome) -> bytes:
    """The genome as one safetensors blob (its JSON header in the file's metadata): how a
    genome travels to and from another process, never pickled."""
    return save(_flat_tensors(genome), metadata={BLOB_HEADER: json.dumps(_header(genome))})


def blob_header(blob: bytes) -> dict:
    """The JSON header of a `genome_bytes` blob, checked as `genome_header` checks a folder's."""
    try:
        (size,) = struct.unpack("<Q", blob[:8])
        meta = json.loads(json.loads(blob[8:8 + size])["__metadata__"][BLOB_HEADER])
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise JetsynthError(f"not a genome blob ({exc})") from None
    return _checked_header(meta, "genome blob")


def genome_from_bytes(blob: bytes, topology: Topology) -> Genome:
    """The genome a `genome_bytes` blob holds, on `topology` (its architecture, traced)."""
    meta = blob_header(blob)
    _check_belongs(meta, topology, "genome blob")
    try:
        tensors = load(blob)
    except SafetensorError as exc:
        raise JetsynthError(f"unreadable genome blob ({exc})") from None
    return _assemble(meta, tensors, topology, "genome blob", "genome blob")


def genome_header(directory: Path) -> dict:
    """A saved genome's JSON, checked as data: its format, architecture name, input shape
    (three positive integers) and class count (a positive integer)."""
    directory = Path(directory)
    meta_path, tensor_path = directory / META_FILE, directory / TENSORS_FILE
    if not meta_path.is_file() or not tensor_path.is_file():
        raise JetsynthError(f"{directory}: no saved genome ({META_FILE} + {TENSORS_FILE})")
    try:
        meta = read_json(meta_path)
    except (OSError, ValueError) as exc:
        raise JetsynthError(f"{meta_path} is damaged ({type(exc).__name__}: {exc})") from None
    return _checked_header(meta, str(meta_path))


def _checked_header(meta, where: str) -> dict:
    if not isinstance(meta, dict) or meta.get("format") not in READABLE_FORMATS:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise JetsynthError(f"{where}: genome format {found} is not supported "
                            f"(this jetsynth reads {', '.join(map(str, READABLE_FORMATS))})")
    check_input_shape(meta.get("input_shape"), meta.get("num_classes"), where)
    if not isinstance(meta.get("arch"), str):
        raise JetsynthError(f"{where}: arch must be an architecture name, not {meta.get('arch')!r}")
    if meta.get("precision", "fp32") not in PRECISIONS:
        raise JetsynthError(f"{where}: precision must be one of {', '.join(PRECISIONS)}, not "
                            f"{meta.get('precision')!r}; the file is damaged")
    extra = meta.get("extra", {})
    if not isinstance(extra, dict):
        raise JetsynthError(f"{where}: extra must be a JSON object; the file is damaged")
    problem = preprocessing_problem(extra.get("preprocessing", {}), meta["input_shape"][0])
    if problem:
        raise JetsynthError(f"{where}: its preprocessing metadata is damaged ({problem})")
    return meta


def _finite_number(value, positive: bool = False) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and (value > 0 or not positive))


def preprocessing_problem(pre: object, channels: int) -> str | None:
    """What is wrong with a genome's preprocessing metadata (written into every exported model,
    so a deployment normalises as training did), or None: an object whose fields, when present,
    are a layout 'NCHW', a colour 'RGB' or 'L', a positive pixel scale, one finite mean and one
    positive finite std per channel, a resize of two positive sizes and class names as text
    without control characters."""
    if not isinstance(pre, dict):
        return "not a JSON object"
    known = {"layout", "color", "pixel_scale", "mean", "std", "class_names", "resize"}
    if set(pre) - known:
        return f"unknown fields {', '.join(sorted(map(str, set(pre) - known)))}"
    checks = {
        "layout": lambda v: v == "NCHW",
        "color": lambda v: v in ("RGB", "L"),
        "pixel_scale": lambda v: _finite_number(v, positive=True),
        "mean": lambda v: isinstance(v, list) and len(v) == channels and all(map(_finite_number, v)),
        "std": lambda v: isinstance(v, list) and len(v) == channels
        and all(_finite_number(x, positive=True) for x in v),
        "resize": lambda v: isinstance(v, list) and len(v) == 2 and all(
            isinstance(x, int) and not isinstance(x, bool) and 0 < x <= MAX_SIDE for x in v),
        "class_names": lambda v: isinstance(v, list) and all(
            isinstance(x, str) and x.isprintable() and len(x) <= MAX_NAME for x in v),
    }
    wrong = [name for name, ok in checks.items() if name in pre and not ok(pre[name])]
    return f"wrong value for {', '.join(wrong)}" if wrong else None


def _tensors(directory: Path) -> dict[str, torch.Tensor]:
    tensor_path = directory / TENSORS_FILE
    try:
        return load_file(str(tensor_path))
    except (SafetensorError, OSError) as exc:
        raise JetsynthError(f"{tensor_path}: unreadable safetensors file ({exc})") from None


def load_masks(directory: Path) -> dict[str, torch.Tensor]:
    """A saved genome's masks alone, by layer name: what similarity reads, with no architecture
    to build."""
    directory = Path(directory)
    genome_header(directory)
    tensors = _tensors(directory)
    masks = {k[len("mask/"):]: v for k, v in tensors.items() if k.startswith("mask/")}
    if not masks or any(mask.dtype != torch.bool for mask in masks.values()) or any(
            getattr(tensors.get(f"state/{name}.weight"), "shape", None) != mask.shape
            for name, mask in masks.items()):
        raise JetsynthError(f"{directory / TENSORS_FILE}: no valid masks (one per layer, of its "
                            "weight's shape); the file is damaged")
    return masks


def load_genome(directory: Path, topology: Topology | None = None,
                factory: Factory | None = None) -> Genome:
    """A saved genome on `topology` (the run's traced ancestor, whose factory the user allowed),
    else traced with `factory` (the user's), else only if its architecture is a built-in. A
    genome of another architecture or shape than `topology` is refused."""
    directory = Path(directory)
    meta = genome_header(directory)
    shape, classes = tuple(meta["input_shape"]), meta["num_classes"]
    if topology is None:
        topology = topology_for(meta["arch"], shape, classes, factory)
    else:
        _check_belongs(meta, topology, str(directory))
    return _assemble(meta, _tensors(directory), topology, str(directory / TENSORS_FILE),
                     str(directory / META_FILE))


_SPECS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _state_spec(topology: Topology) -> dict[str, torch.Tensor]:
    """The network's state as empty tensors of its names, shapes and dtypes (on the meta
    device), built once per traced topology: a run reads many genomes of one topology."""
    if topology not in _SPECS:
        _SPECS[topology] = {k: torch.empty(v.shape, dtype=v.dtype, device="meta")
                            for k, v in topology.build().state_dict().items()}
    return _SPECS[topology]


def state_problem(given: dict[str, torch.Tensor], wanted: dict[str, torch.Tensor]) -> str | None:
    """What keeps the tensors `given` from being the network's state `wanted`, or None: a
    missing or unexpected name, another shape or dtype (an int8, bool or complex tensor is never
    cast), a NaN or infinite value."""
    missing = sorted(set(wanted) - set(given))
    unexpected = sorted(set(given) - set(wanted))
    if missing or unexpected:
        return (f"its weights {'lack ' + ', '.join(missing[:3]) if missing else ''}"
                f"{'; ' if missing and unexpected else ''}"
                f"{'hold unknown ' + ', '.join(unexpected[:3]) if unexpected else ''}")
    for name, tensor in given.items():
        if tensor.shape != wanted[name].shape:
            return (f"{name} is {tuple(tensor.shape)}, the network's is "
                    f"{tuple(wanted[name].shape)}")
        if tensor.dtype != wanted[name].dtype:
            return f"{name} is {tensor.dtype}, the network's is {wanted[name].dtype}"
        if not all_finite(tensor):
            return f"{name} holds NaN or infinite values"
    return None


def _check_belongs(meta: dict, topology: Topology, where: str) -> None:
    shape, classes = tuple(meta["input_shape"]), meta["num_classes"]
    if (meta["arch"], shape, classes) != (topology.arch, topology.input_shape, topology.num_classes):
        raise JetsynthError(
            f"{where}: a genome of {meta['arch']} {shape} with {classes} classes does not belong "
            f"to this run ({topology.arch} {topology.input_shape} with {topology.num_classes} classes)"
        )


def _assemble(meta: dict, tensors: dict[str, torch.Tensor], topology: Topology, where: str,
              meta_where: str) -> Genome:
    """The genome from its header and tensors, checked; `where` names the tensors' source and
    `meta_where` the header's in errors."""
    def group(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    masks, state, tags = group("mask/"), group("state/"), group("tag/")
    wanted = _state_spec(topology)
    for layer in topology.layers:
        expected = (layer.out_units, layer.in_units * layer.kernel)
        mask = masks.get(layer.name)
        weight = tensors.get(f"state/{layer.name}.weight")
        if (weight is None or weight.numel() != expected[0] * expected[1]
                or f"tag/{layer.name}" not in tensors):
            raise JetsynthError(f"{where}: no valid weights or tags for layer '{layer.name}'; the "
                                "file is damaged or from another architecture")
        if mask is None or mask.dtype != torch.bool or mask.shape != weight.shape:
            raise JetsynthError(f"{where}: no valid mask for layer '{layer.name}'")
        tag = tags[layer.name]
        if tag.dtype != torch.int64 or tuple(tag.shape) != (layer.out_units, layer.in_units):
            raise JetsynthError(f"{where}: the tags of layer '{layer.name}' are "
                                f"{tag.dtype} {tuple(tag.shape)}, not int64 "
                                f"{(layer.out_units, layer.in_units)}; the file is damaged")
    problem = state_problem(state, wanted)
    if problem:
        raise JetsynthError(f"{where}: {problem}; the file is damaged or from another architecture")
    lineage = meta.get("lineage")
    if not (isinstance(lineage, dict) and isinstance(lineage.get("id"), str)
            and isinstance(lineage.get("generation"), int) and isinstance(lineage.get("member"), int)
            and isinstance(lineage.get("parents"), list)
            and all(isinstance(p, str) for p in lineage["parents"])):
        raise JetsynthError(f"{meta_where}: its lineage (id, generation, member, parents) "
                            "is missing or damaged")
    return Genome(
        topology=topology,
        state=state,
        masks=masks,
        tags=tags,
        lineage=Lineage(
            id=lineage["id"],
            generation=lineage["generation"],
            member=lineage["member"],
            parents=tuple(lineage["parents"]),
        ),
        precision=meta.get("precision", "fp32"),
        extra=meta.get("extra", {}),
    )
