"""R2R growth (seed 003): function-preserving transforms that widen or deepen a network without
changing any weight it already has.

An **R2R block** computes zero for every input while all its weights can learn: a convolution
(or linear layer) with 2n filters whose second n are copies of the first n, batch norm, ReLU,
and a 1×1 convolution (linear) whose weights on the second n channels are the negatives of those
on the first n (β and −β, the seed's "concatenation form" of two parallel convolutions). The two
halves compute the same activations h, so β·h − β·h = 0; the gradients of the two copies are
opposite and those of β and −β equal, so the first update breaks the symmetry.

- **R2WiderR** at layer L (a conv or hidden linear layer): a block reading L's input is added to
  L's output, i.e. 2n new filters inside L (kernel 1×1, 3×3 or 5×5, whatever L's own).
- **R2DeeperR** at layer L: a new residual layer right after L, out = y + block(y), the block
  reading and writing L's channels (same width, so the residual needs no zero padding).
- **R2DeeperR of another width** (``deep(L,k,n,id,W)``, W greater than L's input channels C): a
  new residual layer of W channels in front of L, z = pad(x) + block(x), the residual x zero-padded
  by W − C channels; L reads z, its old weights on the first C channels and new ones (`feed`) on
  the W − C new channels, which are zero when added, so L's output is unchanged.

A transform is written in the architecture's name (``small-cnn|wide(0,3,4,17)|deep(4,1,2,18)``):
the base architecture, then per transform its kind, the layer (the module path in the base
network's naming: a wrapped layer keeps its name), kernel, n, and a unique id. The id names the
new modules (``wide17``) and seeds their initial weights, so the name alone rebuilds the network,
and two networks that carry the same id share that block (see `population`). The first transform
at a layer moves its module to ``LAYER.base`` inside a `GrownLayer`; its weights are the same
tensors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from jetsynth.errors import JetsynthError

SEPARATOR = "|"
KINDS = ("wide", "deep")
KERNELS = (1, 3, 5)
BASE = "base"
_OP = re.compile(r"^(wide|deep)\(([^,()|]+),(\d+),(\d+),(\d+)(?:,(\d+))?\)$")
_SEED_SALT = 0x5EED003


@dataclass(frozen=True)
class Transform:
    """One R2R transform: `kind` 'wide' (R2WiderR) or 'deep' (R2DeeperR) at `layer` (a module
    path, `.base` left out), with `kernel`×`kernel` filters, `pairs` filter pairs (2·pairs new
    channels) and a run-unique `uid`. `channels` (deep only, 0: the same width after `layer`) is
    the channel count of a new layer in front of `layer`, more than `layer` reads."""

    kind: str
    layer: str
    kernel: int
    pairs: int
    uid: int
    channels: int = 0

    def __str__(self) -> str:
        width = f",{self.channels}" if self.channels else ""
        return f"{self.kind}({self.layer},{self.kernel},{self.pairs},{self.uid}{width})"

    @property
    def module_name(self) -> str:
        return f"{self.kind}{self.uid}"


def split_arch(arch: str) -> tuple[str, tuple[Transform, ...]]:
    """The base architecture and the transforms of a grown architecture's name."""
    base, *ops = arch.split(SEPARATOR)
    transforms = []
    for text in ops:
        match = _OP.match(text)
        if match is None:
            raise JetsynthError(f"'{text}' in architecture '{arch}' is not an R2R transform "
                                "(kind(layer,kernel,pairs,id) or deep(layer,kernel,pairs,id,channels))")
        kind, layer, kernel, pairs, uid, channels = match.groups()
        if channels and kind != "deep":
            raise JetsynthError(f"'{text}' in architecture '{arch}': only deep transforms take a "
                                "channel count")
        transforms.append(Transform(kind, layer, int(kernel), int(pairs), int(uid), int(channels or 0)))
    return base, tuple(transforms)


def join_arch(base: str, transforms) -> str:
    """The grown architecture's name, its transforms in the order of their ids (the order they
    were made in: a transform inside a block comes after the block's)."""
    ordered = sorted(set(transforms), key=lambda t: t.uid)
    if len({t.uid for t in ordered}) != len(ordered):
        raise JetsynthError("two different R2R transforms carry the same id")
    return SEPARATOR.join([base, *(str(t) for t in ordered)])


def is_grown(arch: str) -> bool:
    return isinstance(arch, str) and SEPARATOR in arch


def next_uid(arch: str) -> int:
    """One more than the largest transform id the architecture carries."""
    return 1 + max((t.uid for t in split_arch(arch)[1]), default=0)


# --------------------------------------------------------------------------------------------
# Modules


class R2RBlock(nn.Module):
    """expand (2·pairs filters, copies in pairs) → batch norm → ReLU → project (β, −β): zero out,
    every weight trainable. `crop` trims that many pixels off each border of the input first,
    where the host layer's padding is smaller than the block's kernel needs."""

    def __init__(self, conv: bool, cin: int, cout: int, kernel: int, pairs: int, stride: int = 1,
                 padding: int = 0, crop: int = 0) -> None:
        super().__init__()
        hidden = 2 * pairs
        self.crop = crop
        if conv:
            self.expand = nn.Conv2d(cin, hidden, kernel, stride=stride, padding=padding, bias=False)
            self.norm = nn.BatchNorm2d(hidden)
            self.project = nn.Conv2d(hidden, cout, 1, bias=False)
        else:
            self.expand = nn.Linear(cin, hidden, bias=False)
            self.norm = nn.BatchNorm1d(hidden)
            self.project = nn.Linear(hidden, cout, bias=False)
        self.relu = nn.ReLU()

    @torch.no_grad()
    def zero_init(self, generator: torch.Generator) -> R2RBlock:
        """W drawn He-normal (fan in) and duplicated; β drawn N(0, 1/hidden) and negated."""
        hidden = self.expand.weight.shape[0]
        pairs = hidden // 2
        fan_in = self.expand.weight[0].numel()
        w = torch.randn(pairs, *self.expand.weight.shape[1:], generator=generator) * math.sqrt(2.0 / fan_in)
        self.expand.weight.copy_(torch.cat([w, w]))
        beta = torch.randn(self.project.weight.shape[0], pairs, *self.project.weight.shape[2:],
                           generator=generator) / math.sqrt(hidden)
        self.project.weight.copy_(torch.cat([beta, -beta], dim=1))
        return self

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The activations after expand, batch norm and ReLU (the two halves equal at init)."""
        if self.crop:
            x = x[:, :, self.crop:x.shape[2] - self.crop, self.crop:x.shape[3] - self.crop]
        hidden = self.expand(x)
        if self.training and hidden.shape[0] == 1 and hidden.dim() == 2:
            # batch norm cannot take batch statistics of one vector: use the running ones
            norm = self.norm
            hidden = nn.functional.batch_norm(hidden, norm.running_mean, norm.running_var, norm.weight,
                                              norm.bias, False, 0.0, norm.eps)
        else:
            hidden = self.norm(hidden)
        return self.relu(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.hidden(x))


def _beta_pairs(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """β then −β along the input axis of a 1×1 conv or linear weight, β ~ N(0, 1/inputs)."""
    pairs = weight.shape[1] // 2
    beta = torch.randn(weight.shape[0], pairs, *weight.shape[2:], generator=generator)
    beta = beta / math.sqrt(weight.shape[1])
    return torch.cat([beta, -beta], dim=1)


class PaddedDeeperBlock(R2RBlock):
    """R2DeeperR to a wider layer, in front of a host conv/linear layer that reads C channels:
    z = pad(x) + block(x) has C + `extra` channels (the residual x zero-padded), kept as its two
    parts: x + project(h) (the C old channels) and grow(h) (the `extra` new ones, zero at init,
    β/−β like project). The host reads the old part with its own weights and the new part with
    `feed` (the host's kernel, stride, padding and dilation; He-normal, so gradients reach the new
    channels from the first update and `feed` learns once they are non-zero)."""

    def __init__(self, host: nn.Module, kernel: int, pairs: int, extra: int) -> None:
        conv = isinstance(host, nn.Conv2d)
        cin = host.in_channels if conv else host.in_features
        super().__init__(conv, cin, cin, kernel, pairs, 1, kernel // 2 if conv else 0)
        hidden = 2 * pairs
        if conv:
            self.grow = nn.Conv2d(hidden, extra, 1, bias=False)
            self.feed = nn.Conv2d(extra, host.out_channels, host.kernel_size, stride=host.stride,
                                  padding=host.padding, dilation=host.dilation, bias=False)
        else:
            self.grow = nn.Linear(hidden, extra, bias=False)
            self.feed = nn.Linear(extra, host.out_features, bias=False)

    @torch.no_grad()
    def zero_init(self, generator: torch.Generator) -> PaddedDeeperBlock:
        super().zero_init(generator)
        self.grow.weight.copy_(_beta_pairs(self.grow.weight, generator))
        fan_in = self.feed.weight[0].numel()
        self.feed.weight.copy_(torch.randn(self.feed.weight.shape, generator=generator)
                               * math.sqrt(2.0 / fan_in))
        return self

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the old channels x + project(h), the new channels grow(h)) of the layer's output."""
        hidden = self.hidden(x)
        return x + self.project(hidden), self.grow(hidden)


class GrownLayer(nn.Module):
    """A conv or linear layer (`base`, its weights untouched) with R2WiderR blocks added to its
    output and R2DeeperR residual layers after it, in the order they were added."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.wides: list[str] = []
        self.deeps: list[str] = []
        self.front: str | None = None

    def add(self, transform: Transform, block: R2RBlock) -> None:
        """Blocks run in the order of their ids whatever order they were added in, so a set of
        transforms builds one network (every block is zero when added, so inserting one before
        a later one's residual layer changes nothing). Wide blocks read the layer's own input,
        not the wider layer in front of it."""
        if transform.channels:
            if self.front is not None:
                raise JetsynthError(f"layer '{transform.layer}' already has a wider layer in front "
                                    f"({self.front}); deepen that one instead")
            self.add_module(transform.module_name, block)
            self.front = transform.module_name
            return
        self.add_module(transform.module_name, block)
        names = self.wides if transform.kind == "wide" else self.deeps
        names.append(transform.module_name)
        names.sort(key=lambda name: int(name[4:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.front is None:
            out = self.base(x)
        else:
            block = getattr(self, self.front)
            old, new = block.split(x)
            out = self.base(old) + block.feed(new)
        for name in self.wides:
            out = out + getattr(self, name)(x)
        for name in self.deeps:
            out = out + getattr(self, name)(out)
        return out


def _resolve(model: nn.Module, path: str) -> tuple[nn.Module | None, str, nn.Module]:
    """(parent, attribute, module) of the module at `path` (module path without `.base`)."""
    parent, attr = None, ""
    module = model
    for part in path.split(".") if path else []:
        if isinstance(module, GrownLayer) and part != BASE and part not in module._modules:
            module = module.base
        if part not in module._modules:
            raise JetsynthError(f"no layer '{path}' to grow")
        parent, attr, module = module, part, module._modules[part]
    return parent, attr, module


def _host(module: nn.Module) -> nn.Module:
    return module.base if isinstance(module, GrownLayer) else module


def _block(host: nn.Module, transform: Transform) -> R2RBlock:
    if transform.kernel not in KERNELS:
        raise JetsynthError(f"R2R kernels are {KERNELS}, not {transform.kernel}")
    if transform.pairs < 1:
        raise JetsynthError(f"an R2R block needs at least one filter pair, not {transform.pairs}")
    if transform.channels:
        return _padded_block(host, transform)
    if isinstance(host, nn.Conv2d):
        if host.groups != 1 or host.padding_mode != "zeros" or isinstance(host.padding, str):
            raise JetsynthError("R2R grows plain convolutions only (groups 1, numeric zero padding)")
        if transform.kind == "deep":
            return R2RBlock(True, host.out_channels, host.out_channels, transform.kernel,
                            transform.pairs, 1, transform.kernel // 2)
        kh, kw = host.kernel_size
        (ph, pw), (dh, dw) = host.padding, host.dilation
        if kh != kw or ph != pw or dh != dw or host.stride[0] != host.stride[1]:
            raise JetsynthError("R2WiderR needs a square kernel, padding and stride at the host layer")
        span = dh * (kh - 1) + 1
        if (transform.kernel - span) % 2:
            raise JetsynthError(f"a {transform.kernel}×{transform.kernel} block cannot align with "
                                f"a {kh}×{kw} (dilation {dh}) layer")
        padding = ph + (transform.kernel - span) // 2
        return R2RBlock(True, host.in_channels, host.out_channels, transform.kernel,
                        transform.pairs, host.stride[0], max(padding, 0), max(-padding, 0))
    if isinstance(host, nn.Linear):
        cin = host.out_features if transform.kind == "deep" else host.in_features
        return R2RBlock(False, cin, host.out_features, 1, transform.pairs)
    raise JetsynthError(f"R2R grows conv and linear layers, not a {type(host).__name__}")


def _padded_block(host: nn.Module, transform: Transform) -> PaddedDeeperBlock:
    if transform.kind != "deep":
        raise JetsynthError("only R2DeeperR takes a channel count")
    if isinstance(host, nn.Conv2d):
        if host.groups != 1 or host.padding_mode != "zeros" or isinstance(host.padding, str):
            raise JetsynthError("R2R grows plain convolutions only (groups 1, numeric zero padding)")
        cin = host.in_channels
    elif isinstance(host, nn.Linear):
        cin = host.in_features
    else:
        raise JetsynthError(f"R2R grows conv and linear layers, not a {type(host).__name__}")
    if transform.channels <= cin:
        raise JetsynthError(f"a deeper layer in front of '{transform.layer}' needs more than the "
                            f"{cin} channels it reads, not {transform.channels} (zero padding only "
                            "adds channels; leave the count out for a layer of the same width)")
    return PaddedDeeperBlock(host, transform.kernel, transform.pairs, transform.channels - cin)


def block_generator(uid: int) -> torch.Generator:
    return torch.Generator().manual_seed(_SEED_SALT + int(uid))


def apply_transform(model: nn.Module, transform: Transform) -> nn.Module:
    """Grow `model` in place by one transform (new weights drawn from the transform's id); the
    returned model is `model`. Every weight it had is the same tensor afterwards."""
    parent, attr, module = _resolve(model, transform.layer)
    if transform.kind not in KINDS:
        raise JetsynthError(f"unknown R2R transform '{transform.kind}'")
    host = _host(module)
    block = _block(host, transform).zero_init(block_generator(transform.uid))
    block.train(model.training)
    if not isinstance(module, GrownLayer):
        if parent is None:
            raise JetsynthError("the whole network is not a layer to grow")
        module = GrownLayer(host)
        module.train(host.training)
        parent._modules[attr] = module
    module.add(transform, block)
    return model


def grown_factory(base_factory: Callable, arch: str) -> Callable:
    """The factory of a grown architecture: the base network, then its transforms."""
    _, transforms = split_arch(arch)

    def build(input_shape, num_classes):
        model = base_factory(input_shape, num_classes)
        for transform in transforms:
            apply_transform(model, transform)
        return model

    return build


def layer_name(path: str, model: nn.Module) -> str:
    """The module path of the conv/linear layer a transform path names, in `model`."""
    _, _, module = _resolve(model, path)
    return f"{path}.{BASE}" if isinstance(module, GrownLayer) else path


def canonical_layer(name: str) -> str:
    """A layer's module path with `.base` left out: the name transforms use."""
    return ".".join(part for part in name.split(".") if part != BASE)


def growable_layers(model: nn.Module, output: str) -> list[str]:
    """The transform paths of the conv/linear layers that may grow: all but the output layer
    and depthwise/grouped convolutions."""
    found = []
    for name, module in model.named_modules():
        if name == output or not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        if isinstance(module, nn.Conv2d) and module.groups != 1:
            continue
        found.append(canonical_layer(name))
    return found


SHAPES = ("wide", "deep", "wider-deep")
"""What `random_transform` draws among: R2WiderR, R2DeeperR of the layer's width, and R2DeeperR
of a wider layer in front of the host (the paper's "zero padding is added in the residual
connection as required")."""


def random_transform(model: nn.Module, output: str, uid: int, generator: torch.Generator,
                     shapes: tuple[str, ...] = SHAPES, kernels: tuple[int, ...] = KERNELS,
                     pairs: tuple[int, ...] = (2, 4, 8)) -> Transform:
    """A transform drawn uniformly: shape (`SHAPES`), layer (hidden conv/linear layers), kernel
    (1 for a linear layer) and pairs. A wider-deeper layer reads 2·pairs more channels than its
    host (the block's own width); at a host that already has one in front, a same-width deeper
    layer is drawn instead (one wider layer per host)."""
    def pick(options):
        return options[int(torch.randint(len(options), (1,), generator=generator))]

    layers = growable_layers(model, output)
    if not layers:
        raise JetsynthError("the network has no hidden conv or linear layer to grow")
    shape, layer = pick(shapes), pick(layers)
    _, _, module = _resolve(model, layer)
    host = _host(module)
    kernel = pick(kernels) if isinstance(host, nn.Conv2d) else 1
    count = pick(pairs)
    if shape != "wider-deep":
        return Transform(shape, layer, kernel, count, uid)
    if isinstance(module, GrownLayer) and module.front is not None:
        return Transform("deep", layer, kernel, count, uid)
    reads = host.in_channels if isinstance(host, nn.Conv2d) else host.in_features
    return Transform("deep", layer, kernel, count, uid, reads + 2 * count)
