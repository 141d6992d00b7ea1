"""The structure model of a network: its prunable layers (conv and linear) and the *channel
spaces* they write and read, traced once from the ancestor with Torch-Pruning's dependency graph.

A channel space is a set of channels that live or die together: the outputs of one layer, or a
residual stream that several layers add into (one space shared by every producer), or one branch
of a concatenation (the reader maps its input units back to the branches' spaces). A depthwise
convolution couples its output channel to the input channel of the same index, so it sits inside
the space it reads. The output layer writes the class space, which never shrinks.

Every mask stays in ancestor coordinates (the weight's own shape), so this module answers, for
any set of masks: which units stay alive (`settle`), which channels of each space survive
compaction (`kept_channels`), and what the compacted network costs (`macs`).

Liveness: an input unit of a layer is *delivered* when some layer upstream of it (reached
without passing another prunable layer: through activations, pooling, batch norm, additions,
concatenation, flattening) writes that channel through a live synapse; an output unit is alive
when it has a live synapse reading a delivered unit and some live synapse downstream reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import nn

from jetsynth.errors import JetsynthError

PRUNABLE = (nn.Conv2d, nn.Linear)
INPUT = -1
CLASSES = -2
CLUSTER_MODES = ("kernel", "filter")


@dataclass(frozen=True)
class Layer:
    """One prunable layer. Its weight is viewed as a grid (out_units, in_units, kernel): in_units
    input units per output unit (1 for a depthwise conv), kernel synapses per pair (kh·kw for a
    conv; for a linear layer, the spatial positions each input channel was flattened from).
    `in_spaces`/`in_channels` name the space and channel of each of the `inputs` units the layer
    reads (INPUT for the network's own input); `out_channels` the channel of `out_space` each
    output unit writes. `upstream`: the layers that feed it directly."""

    name: str
    kind: str
    out_units: int
    in_units: int
    kernel: int
    out_positions: int
    depthwise: bool
    out_space: int
    out_channels: tuple[int, ...]
    in_spaces: tuple[int, ...]
    in_channels: tuple[int, ...]
    upstream: tuple[str, ...]

    @property
    def synapses(self) -> int:
        return self.out_units * self.in_units * self.kernel

    @property
    def inputs(self) -> int:
        return len(self.in_spaces)

    @cached_property
    def in_space_tensor(self) -> torch.Tensor:
        return torch.tensor(self.in_spaces, dtype=torch.long)

    @cached_property
    def in_channel_tensor(self) -> torch.Tensor:
        return torch.tensor(self.in_channels, dtype=torch.long)

    @cached_property
    def out_channel_tensor(self) -> torch.Tensor:
        return torch.tensor(self.out_channels, dtype=torch.long)


@dataclass(frozen=True)
class Member:
    """A module Torch-Pruning shrinks with a space: `role` 'out' (its outputs, e.g. a conv's
    filters or a batch norm's channels) or 'in' (a reader's inputs); `idxs[i]` of that dimension
    is channel `roots[i]` of the space."""

    module: str
    role: str
    idxs: tuple[int, ...]
    roots: tuple[int, ...]
    dim: int = 0
    """role 'param' (a parameter outside any module, e.g. a layer scale, named in `module`):
    the dimension along which its channels lie."""


@dataclass(frozen=True)
class Space:
    index: int
    size: int
    producers: tuple[str, ...]
    readers: tuple[str, ...]
    members: tuple[Member, ...]


@dataclass(frozen=True)
class Topology:
    """The traced structure of an ancestor, and the factory that builds it (not compared)."""

    arch: str
    input_shape: tuple[int, int, int]
    num_classes: int
    layers: tuple[Layer, ...]
    spaces: tuple[Space, ...]
    factory: Callable = field(compare=False, repr=False)

    @cached_property
    def by_name(self) -> dict[str, Layer]:
        return {layer.name: layer for layer in self.layers}

    @property
    def output(self) -> Layer:
        return self.layers[-1]

    def layer(self, name: str) -> Layer:
        return self.by_name[name]

    def build(self) -> nn.Module:
        """A freshly initialised ancestor-shaped network (seed the torch RNG first)."""
        return self.factory(tuple(self.input_shape), int(self.num_classes))

    def producers(self, space: int) -> list[Layer]:
        return [self.by_name[name] for name in self.spaces[space].producers]


def grid(tensor: torch.Tensor, layer: Layer) -> torch.Tensor:
    """A weight-shaped tensor viewed as (out_units, in_units, kernel)."""
    return tensor.reshape(layer.out_units, layer.in_units, layer.kernel)


def cluster_view(tensor: torch.Tensor, layer: Layer, mode: str) -> torch.Tensor:
    """A weight-shaped tensor of one layer as (clusters, synapses per cluster): a conv kernel
    (mode 'kernel') or a whole filter (mode 'filter'); a linear layer clusters by output neuron."""
    if mode not in CLUSTER_MODES:
        raise JetsynthError(f"unknown cluster mode '{mode}': use kernel or filter")
    if layer.kind == "conv" and mode == "kernel":
        return tensor.reshape(layer.out_units * layer.in_units, layer.kernel)
    return tensor.reshape(layer.out_units, layer.in_units * layer.kernel)


# --------------------------------------------------------------------------------------------
# Tracing


def _execution(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, tuple]:
    """Each prunable layer's output shape, in the order forward() runs them."""
    modules = dict(model.named_modules())
    prunable = [n for n, m in modules.items() if isinstance(m, PRUNABLE)]
    if not prunable:
        raise JetsynthError("the model has no Conv2d or Linear layer to evolve")
    calls: dict[str, tuple] = {}

    def recorder(name):
        def hook(_module, _inputs, output):
            if name in calls:
                raise JetsynthError(f"layer '{name}' is called twice in forward(); a layer whose "
                                    "weights are shared between calls cannot evolve")
            calls[name] = tuple(output.shape)

        return hook

    handles = [modules[n].register_forward_hook(recorder(n)) for n in prunable]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    except JetsynthError:
        raise
    except Exception as exc:
        raise JetsynthError(f"the model cannot take inputs of shape {tuple(input_shape)}: {exc}") from None
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    unused = [n for n in prunable if n not in calls]
    if unused:
        raise JetsynthError(f"layers never used in forward(): {', '.join(unused)}")
    for name in calls:
        module = modules[name]
        if isinstance(module, nn.Conv2d) and module.groups > 1 and not is_depthwise(module):
            raise JetsynthError(
                f"conv '{name}' has groups={module.groups}: grouped convolutions evolve only as "
                "depthwise convolutions (groups = in_channels = out_channels)"
            )
    return calls


def is_depthwise(module: nn.Module) -> bool:
    return (isinstance(module, nn.Conv2d) and module.groups > 1
            and module.groups == module.in_channels == module.out_channels)


def _dependency_graph(model: nn.Module, input_shape: tuple[int, int, int]):
    import torch_pruning as tp

    try:
        with torch.enable_grad():
            return tp.DependencyGraph().build_dependency(
                model, example_inputs=torch.zeros(1, *input_shape), verbose=False
            )
    except Exception as exc:  # tracing a user's model may fail in many ways
        raise JetsynthError(f"torch-pruning cannot trace the network's channel couplings: "
                            f"{type(exc).__name__}: {exc}") from None


def _upstream(graph, module: nn.Module, names: dict) -> tuple[str, ...]:
    """The prunable layers whose outputs reach `module`'s input without another prunable
    layer in between (leaves of the graph, such as parameters, are not layers)."""
    found: list[str] = []
    seen = set()
    stack = list(graph.module2node[module].inputs)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.module, PRUNABLE) and node.module in names:
            if names[node.module] not in found:
                found.append(names[node.module])
            continue
        stack.extend(node.inputs)
    return tuple(found)


def trace(model: nn.Module, arch: str, input_shape: tuple[int, int, int], num_classes: int,
          factory: Callable) -> Topology:
    """The topology of `model` (an ancestor built by `factory`) for inputs of `input_shape`."""
    input_shape = tuple(int(v) for v in input_shape)
    calls = _execution(model, input_shape)
    order = list(calls)
    modules = dict(model.named_modules())
    _check_output(order[-1], modules[order[-1]], int(num_classes))
    names = {module: name for name, module in modules.items()}
    graph = _dependency_graph(model, input_shape)
    output = order[-1]
    out_map: dict[str, dict[int, tuple[int, int]]] = {n: {} for n in order}
    in_map: dict[str, dict[int, tuple[int, int]]] = {n: {} for n in order}
    spaces: list[Space] = []
    groups = graph.get_all_groups(ignored_layers=[modules[output]], root_module_types=PRUNABLE)
    loose = {id(p): name for name, p in model.named_parameters()}
    mapped: set[str] = set()
    for group in groups:
        index = len(spaces)
        size = len(group[0].root_idxs)
        members: dict[tuple[str, str], Member] = {}
        producers, readers = [], []
        for item in group:
            module = item.dep.target.module
            if isinstance(module, nn.Parameter) and id(module) in loose:
                name = loose[id(module)]
                if sum(1 for d in module.shape if d > 1) > 1:
                    raise JetsynthError(
                        f"parameter '{name}' {tuple(module.shape)} sits outside any conv, linear or "
                        "norm module and has several dimensions longer than 1: jetsynth cannot tell "
                        "which follows the channels; wrap it in a module (nn.Linear, nn.Conv2d) or "
                        "keep it out of the evolved network")
                members.setdefault((name, "param"), Member(
                    name, "param", tuple(int(i) for i in item.idxs),
                    tuple(int(r) for r in item.root_idxs), int(item.dep.target.pruning_dim)))
                mapped.add(name)
                continue
            if not isinstance(module, nn.Module) or module not in names:
                continue
            handler = item.dep.handler
            role = ("out" if graph.is_out_channel_pruning_fn(handler)
                    else "in" if graph.is_in_channel_pruning_fn(handler) else None)
            name = names[module]
            if role is None or (name, role) in members:
                continue
            idxs = tuple(int(i) for i in item.idxs)
            roots = tuple(int(r) for r in item.root_idxs)
            members[(name, role)] = Member(name, role, idxs, roots)
            if name not in calls:
                continue
            if role == "out":
                producers.append(name)
                target = out_map[name]
            else:
                readers.append(name)
                target = in_map[name]
            for i, r in zip(idxs, roots, strict=True):
                if i in target:
                    raise JetsynthError(f"torch-pruning maps channel {i} of '{name}' to two spaces; "
                                        "this coupling cannot evolve")
                target[i] = (index, r)
        spaces.append(Space(index, size, tuple(producers), tuple(readers), tuple(members.values())))
    _check_loose(graph, loose, mapped, output)
    layers = [_layer(name, modules[name], calls[name], out_map[name], in_map[name],
                     _upstream(graph, modules[name], names), name == output, input_shape)
              for name in order]
    return Topology(arch, input_shape, int(num_classes), tuple(layers), tuple(spaces), factory)


def _check_loose(graph, loose: dict[int, str], mapped: set[str], output: str) -> None:
    """A parameter outside conv/linear/norm modules that Torch-Pruning found (its `unwrapped
    parameters`) shrinks with the channel space it is coupled to (`mapped`); one that is coupled
    to none cannot follow its channels, so the model is refused here, before anything trains,
    naming it (a parameter of the output's classes, which never shrink, is fine)."""
    for param, _dim in graph.unwrapped_parameters:
        name = loose.get(id(param))
        if name is None or name in mapped or name.startswith(f"{output}."):
            continue
        if param in graph.module2node:
            raise JetsynthError(
                f"parameter '{name}' {tuple(param.shape)} sits outside any conv, linear or norm "
                "module and Torch-Pruning cannot tie it to a channel space, so it could not shrink "
                "with its channels: wrap it in a module, or keep it out of the evolved network")


def _check_output(name: str, module: nn.Module, num_classes: int) -> None:
    """The last layer forward() runs writes the classes: its width must be the data's classes
    (a model built for 1000 classes would train on 10 and report nonsense)."""
    width = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
    if width != num_classes:
        raise JetsynthError(
            f"the model's last layer '{name}' writes {width} outputs but the data has {num_classes} "
            "classes: build it with the num_classes your factory is given")


def _layer(name: str, module: nn.Module, out_shape: tuple, out_map: dict, in_map: dict,
           upstream: tuple[str, ...], is_output: bool, input_shape) -> Layer:
    conv = isinstance(module, nn.Conv2d)
    out_units = module.out_channels if conv else module.out_features
    depthwise = is_depthwise(module)
    if is_output:
        out_space, out_channels = CLASSES, tuple(range(out_units))
    else:
        if sorted(out_map) != list(range(out_units)):
            raise JetsynthError(
                f"torch-pruning's graph does not cover every output channel of '{name}' "
                f"({len(out_map)} of {out_units}); this network cannot evolve (a concatenation "
                "followed by a reshape is a known case)"
            )
        found = {space for space, _ in out_map.values()}
        if len(found) != 1:
            raise JetsynthError(f"the outputs of '{name}' fall into several channel spaces")
        out_space = found.pop()
        out_channels = tuple(out_map[o][1] for o in range(out_units))
    if depthwise:
        return Layer(name, "conv", out_units, 1, module.kernel_size[0] * module.kernel_size[1],
                     out_shape[2] * out_shape[3], True, out_space, out_channels,
                     (out_space,) * out_units, out_channels, upstream)
    if conv:
        features, kernel = module.in_channels, module.kernel_size[0] * module.kernel_size[1]
        positions = out_shape[2] * out_shape[3]
    else:
        features, kernel, positions = module.in_features, 1, 1
    units, per_unit = _input_units(name, features, in_map, conv, input_shape)
    if not conv:
        kernel = per_unit
    spaces = tuple(s for s, _ in units)
    channels = tuple(c for _, c in units)
    return Layer(name, "conv" if conv else "linear", out_units, len(units), kernel, positions,
                 False, out_space, out_channels, spaces, channels, upstream)


def _input_units(name: str, features: int, in_map: dict, conv: bool, input_shape):
    """The (space, channel) of each input unit and, for a linear layer, the features per unit
    (the positions a channel was flattened from, channel-major as torch flattens)."""
    if not in_map:
        if conv:
            return [(INPUT, c) for c in range(features)], 1
        channels = input_shape[0] if features % input_shape[0] == 0 else features
        per_unit = features // channels
        return [(INPUT, c) for c in range(channels)], per_unit
    if sorted(in_map) != list(range(features)):
        raise JetsynthError(f"torch-pruning's graph maps {len(in_map)} of the {features} inputs of "
                            f"'{name}'; this network cannot evolve")
    if conv:
        return [in_map[i] for i in range(features)], 1
    runs = [1]
    for i in range(1, features):
        if in_map[i] == in_map[i - 1]:
            runs[-1] += 1
        else:
            runs.append(1)
    per_unit = runs[0]
    if any(r != per_unit for r in runs) or features % per_unit:
        raise JetsynthError(f"the inputs of linear '{name}' are not whole flattened channels")
    return [in_map[u * per_unit] for u in range(features // per_unit)], per_unit


# --------------------------------------------------------------------------------------------
# Liveness on masks


def row_alive(mask: torch.Tensor, layer: Layer) -> torch.Tensor:
    """Per output unit: does it keep any synapse?"""
    return grid(mask, layer).flatten(1).any(dim=1)


def _deliver(topology: Topology, layer: Layer, live_out: dict[str, torch.Tensor]) -> torch.Tensor:
    """Which of `layer`'s input units some live upstream unit writes."""
    spaces, channels = layer.in_space_tensor, layer.in_channel_tensor
    delivered = spaces == INPUT
    for source in layer.upstream:
        src = topology.layer(source)
        if source not in live_out or src.out_space < 0:
            continue
        channel_live = torch.zeros(topology.spaces[src.out_space].size, dtype=torch.bool)
        channel_live[src.out_channel_tensor[live_out[source]]] = True
        match = spaces == src.out_space
        delivered[match] |= channel_live[channels[match]]
    return delivered


def _input_grid(layer: Layer, delivered: torch.Tensor) -> torch.Tensor:
    """The delivered flags laid over the (out, in, kernel) grid."""
    if layer.depthwise:
        return delivered[:, None, None]
    return delivered[None, :, None]


def delivered_inputs(topology: Topology, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per layer, which input units are written by a live unit upstream (forward liveness)."""
    live_out: dict[str, torch.Tensor] = {}
    delivered = {}
    for layer in topology.layers:
        d = _deliver(topology, layer, live_out)
        delivered[layer.name] = d
        live_out[layer.name] = (grid(masks[layer.name], layer) & _input_grid(layer, d)).flatten(1).any(1)
    return delivered


def settle(topology: Topology, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """New masks without the synapses of dead units: those reading units nothing live writes,
    and those of units nothing live reads. The output layer's units are the classes: a class
    keeps whatever synapses still read live units."""
    delivered = delivered_inputs(topology, masks)
    needed: dict[str, torch.Tensor] = {}
    settled = {}
    for layer in reversed(topology.layers):
        if layer.out_space == CLASSES:
            need = torch.ones(layer.out_units, dtype=torch.bool)
        else:
            need = needed.get(layer.name, torch.zeros(layer.out_units, dtype=torch.bool))
        live = grid(masks[layer.name], layer) & _input_grid(layer, delivered[layer.name])
        live = live & need[:, None, None]
        settled[layer.name] = live.reshape(masks[layer.name].shape)
        rows = live.flatten(1).any(dim=1)
        read = rows if layer.depthwise else live.any(dim=2).any(dim=0)
        for source in layer.upstream:
            src = topology.layer(source)
            if src.out_space < 0:
                continue
            match = (layer.in_space_tensor == src.out_space) & read
            channel_read = torch.zeros(topology.spaces[src.out_space].size, dtype=torch.bool)
            channel_read[layer.in_channel_tensor[match]] = True
            previous = needed.get(source, torch.zeros(src.out_units, dtype=torch.bool))
            needed[source] = previous | channel_read[src.out_channel_tensor]
    return {layer.name: settled[layer.name] for layer in topology.layers}


def live_channels(topology: Topology, masks: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Per space, the channels some producer writes through a live synapse: with filter
    clusters, the space's live clusters."""
    live = []
    for space in topology.spaces:
        flags = torch.zeros(space.size, dtype=torch.bool)
        for layer in topology.producers(space.index):
            flags[layer.out_channel_tensor[row_alive(masks[layer.name], layer)]] = True
        live.append(flags)
    return live


def kept_channels(topology: Topology, masks: dict[str, torch.Tensor],
                  multiple: int = 1) -> list[torch.Tensor]:
    """Per space, the channels compaction keeps: the live channels of settled masks, padded to
    `multiple` (see `aligned`). A space with none keeps its first channel, all zero, so the
    layers stay well-formed; it is not padded (a dead block costs one channel, not a group)."""
    kept = aligned(live_channels(topology, masks), multiple)
    for flags in kept:
        if not flags.any():
            flags[0] = True
    return kept


def _kept_units(layer: Layer, kept: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Which of `layer`'s output and input units a compaction keeps."""
    if layer.out_space == CLASSES:
        rows = torch.ones(layer.out_units, dtype=torch.bool)
    else:
        rows = kept[layer.out_space][layer.out_channel_tensor]
    cols = torch.ones(layer.inputs, dtype=torch.bool)
    for index, flags in enumerate(kept):
        match = layer.in_space_tensor == index
        cols[match] = flags[layer.in_channel_tensor[match]]
    return rows, cols


def aligned(kept: list[torch.Tensor], multiple: int) -> list[torch.Tensor]:
    """The kept channels of each space padded, with the first channels that died, to a multiple
    of `multiple` (or the whole space): the padding carries no live synapse, so the network
    computes the same, and accelerators and CPU kernels that work on blocks of channels (8 or
    16) run whole blocks instead of a slow remainder."""
    if multiple <= 1:
        return kept
    out = []
    for flags in kept:
        flags = flags.clone()
        want = min(len(flags), -(-int(flags.sum()) // multiple) * multiple)
        missing = want - int(flags.sum())
        if missing > 0:
            flags[(~flags).nonzero()[:missing, 0]] = True
        out.append(flags)
    return out


def layer_macs(layer: Layer, rows: int, cols: int) -> int:
    """Multiply-accumulates per image of a dense layer with `rows` output and `cols` input units."""
    if layer.depthwise:
        return rows * layer.kernel * layer.out_positions
    return rows * cols * layer.kernel * layer.out_positions


def macs(topology: Topology, masks: dict[str, torch.Tensor],
         kept: list[torch.Tensor] | None = None) -> dict[str, int]:
    """Per layer, the multiply-accumulates per image of the compacted dense network (conv and
    linear layers; kernel masks inside surviving filters do not lower a dense layer's cost), for
    the channels `kept` (default: those of the settled masks). The one MAC count of the project:
    metrics, reports and export all use it."""
    kept = kept_channels(topology, settle(topology, masks)) if kept is None else kept
    out = {}
    for layer in topology.layers:
        rows, cols = _kept_units(layer, kept)
        out[layer.name] = layer_macs(layer, int(rows.sum()), int(cols.sum()))
    return out
