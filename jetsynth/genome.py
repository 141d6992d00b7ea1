"""What an individual is: its ancestor architecture, its weights and synapse masks in the
ancestor's coordinates, the gene tags of its clusters, and its lineage.

Weights stay in ancestor coordinates (pruned synapses hold zero), so a cluster's position is its
origin; the tags make that identity explicit and survive any later re-indexing (compaction,
growth). Saved as safetensors (tensors) + JSON (everything else); nothing is pickled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import JetsynthError
from .models import Factory, build_model, check_input_shape, resolve_factory
from .network import Layer, chain_layers
from .storage import atomic_write, read_json, write_json

FORMAT_VERSION = 1
TENSORS_FILE = "genome.safetensors"
META_FILE = "genome.json"


@dataclass(frozen=True)
class Lineage:
    id: str
    generation: int
    member: int
    parents: tuple[str, ...] = ()


@dataclass
class Genome:
    arch: str
    input_shape: tuple[int, int, int]
    num_classes: int
    layers: list[Layer]
    state: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    tags: dict[str, torch.Tensor]
    lineage: Lineage
    precision: str = "fp32"
    extra: dict = field(default_factory=dict)
    # The factory for `arch`, resolved on the user's word (not saved); None: built-ins only.
    factory: Factory | None = field(default=None, repr=False, compare=False)

    def resolved_factory(self) -> Factory:
        """`factory`, else the built-in `arch` names; user code named only by the genome's
        files is never imported (a one-line JetsynthError says how to allow it)."""
        return self.factory or resolve_factory(self.arch, trusted=False)

    def build(self) -> nn.Module:
        """The ancestor-shaped network carrying this genome's (masked) weights."""
        model = build_model(self.arch, self.input_shape, self.num_classes, self.resolved_factory())
        model.load_state_dict(self.state)
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
            if bias_key in state and layer is not self.layers[-1]:
                alive = mask.reshape(layer.out_units, -1).any(dim=1)
                state[bias_key] = state[bias_key] * alive
        return replace(self, state=state, masks=dict(masks), lineage=lineage)


def ancestor_genome(
    arch: str, input_shape: tuple[int, int, int], num_classes: int, seed: int,
    factory: Factory | None = None,
) -> Genome:
    """A freshly initialised ancestor: every synapse alive, one unique tag per (out, in) pair.
    `factory`: the one resolved for `arch`; None resolves `arch` as the caller's own word."""
    factory = factory or resolve_factory(arch, trusted=True)
    torch.manual_seed(seed)
    model = build_model(arch, input_shape, num_classes, factory)
    layers = chain_layers(model, input_shape)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    masks = {layer.name: torch.ones_like(state[f"{layer.name}.weight"], dtype=torch.bool)
             for layer in layers}
    tags, offset = {}, 0
    for layer in layers:
        count = layer.out_units * layer.in_units
        tags[layer.name] = torch.arange(offset, offset + count).reshape(
            layer.out_units, layer.in_units
        )
        offset += count
    return Genome(
        arch=arch,
        input_shape=tuple(input_shape),
        num_classes=num_classes,
        layers=layers,
        state=state,
        masks=masks,
        tags=tags,
        lineage=Lineage(id="g01-m00", generation=1, member=0),
        factory=factory,
    )


def save_genome(genome: Genome, directory: Path) -> None:
    directory = Path(directory)
    tensors = {f"state/{k}": v.contiguous() for k, v in genome.state.items()}
    tensors.update({f"mask/{k}": v.contiguous() for k, v in genome.masks.items()})
    tensors.update({f"tag/{k}": v.contiguous() for k, v in genome.tags.items()})
    atomic_write(directory / TENSORS_FILE, lambda tmp: save_file(tensors, str(tmp)))
    write_json(
        directory / META_FILE,
        {
            "format": FORMAT_VERSION,
            "arch": genome.arch,
            "input_shape": list(genome.input_shape),
            "num_classes": genome.num_classes,
            "layers": [asdict(layer) for layer in genome.layers],
            "lineage": asdict(genome.lineage),
            "precision": genome.precision,
            "extra": genome.extra,
        },
    )


def load_genome(directory: Path, factories: dict[str, Factory] | None = None) -> Genome:
    """The genome saved in `directory`. Its architecture is data: `factories` maps the names
    the user allowed on the command line to their factories (see models.stored_factories);
    anything else builds only if it is a built-in."""
    directory = Path(directory)
    meta_path, tensor_path = directory / META_FILE, directory / TENSORS_FILE
    if not meta_path.is_file() or not tensor_path.is_file():
        raise JetsynthError(f"{directory}: no saved genome ({META_FILE} + {TENSORS_FILE})")
    meta = read_json(meta_path)
    if meta.get("format") != FORMAT_VERSION:
        raise JetsynthError(f"{directory}: genome format {meta.get('format')} is not supported")
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError) as exc:
        raise JetsynthError(f"{tensor_path}: unreadable safetensors file ({exc})") from None

    def group(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    arch = meta.get("arch")
    if not isinstance(arch, str):
        raise JetsynthError(f"{meta_path}: arch must be an architecture name, not {arch!r}")
    input_shape, num_classes = check_input_shape(meta.get("input_shape"), meta.get("num_classes"),
                                                 str(meta_path))
    lineage = meta["lineage"]
    return Genome(
        arch=arch,
        input_shape=input_shape,
        num_classes=num_classes,
        layers=[Layer(**layer) for layer in meta["layers"]],
        state=group("state/"),
        masks=group("mask/"),
        tags=group("tag/"),
        lineage=Lineage(
            id=lineage["id"],
            generation=lineage["generation"],
            member=lineage["member"],
            parents=tuple(lineage["parents"]),
        ),
        precision=meta.get("precision", "fp32"),
        extra=meta.get("extra", {}),
        factory=(factories or {}).get(arch),
    )
