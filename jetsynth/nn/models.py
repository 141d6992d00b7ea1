"""Ancestor networks. Every factory takes `(input_shape, num_classes)` and returns an nn.Module,
so a user's own model plugs in the same way through `--arch module:function` or
`--arch file.py:function`.

The trust rule: an architecture is resolved from what the user typed, then recorded. Names read
back from a run's files (config.json, genome.json) are looked up among the built-ins only; user
code named there is imported only when the user repeats --arch or gives --trust-code."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from jetsynth.errors import JetsynthError
from jetsynth.nn import growth


def _flat_features(features: nn.Module, input_shape: tuple[int, int, int]) -> int:
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).numel())


def lenet5(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """LeNet-5 as in seed 001 (Caffe's variant): conv 20@5×5 → pool → conv 50@5×5 → pool →
    fc 500 → fc classes, with ReLU after each hidden layer."""
    features = nn.Sequential(
        nn.Conv2d(input_shape[0], 20, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )
    flat = _flat_features(features, input_shape)
    return nn.Sequential(
        *features, nn.Linear(flat, 500), nn.ReLU(), nn.Linear(500, num_classes)
    )


def alexnet_cifar(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """AlexNet for 32×32 inputs with a 5×5×3 first layer (seed 001): five conv layers
    (64, 192, 384, 256, 256 filters) and three fully-connected layers (1024, 1024, classes).
    The fully-connected widths are smaller than ImageNet AlexNet's 4096 to suit small images."""
    features = nn.Sequential(
        nn.Conv2d(input_shape[0], 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Flatten(),
    )
    flat = _flat_features(features, input_shape)
    return nn.Sequential(
        *features,
        nn.Dropout(0.5),
        nn.Linear(flat, 1024),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(1024, 1024),
        nn.ReLU(),
        nn.Linear(1024, num_classes),
    )


class _BasicBlock(nn.Module):
    """Two 3×3 convs with batch norm and an identity shortcut (a 1×1 conv where the shape
    changes): the residual coupling the export-time compactor must respect."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet_small(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """A small ResNet (stem 16 → blocks 16, 32, 64 → global pool → classes). Not a chain, so
    it does not evolve yet; it is the residual case for compaction and export."""
    return nn.Sequential(
        nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        _BasicBlock(16, 16, 1),
        _BasicBlock(16, 32, 2),
        _BasicBlock(32, 64, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )


def _init_like_torchvision(model: nn.Module, linear_std: float | None) -> None:
    """He-normal convs (fan out), batch norm at identity, and linear layers drawn from
    N(0, linear_std) with zero bias (None: PyTorch's default, as torchvision's ResNet keeps)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and linear_std is not None:
            nn.init.normal_(module.weight, 0.0, linear_std)
            nn.init.zeros_(module.bias)


class _ResidualPair(nn.Module):
    """ResNet's basic block: 3×3 conv, BN, ReLU, 3×3 conv, BN, plus the input (through a
    strided 1×1 conv and BN, named `downsample`, where the shape changes), then ReLU. The
    attribute names are the ones torchvision checkpoints use."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + skip)


class ResNet18(nn.Module):
    """ResNet-18 laid out module for module like torchvision's `resnet18()` (conv1, bn1,
    layer1…layer4 of two basic blocks each, fc), so its checkpoints load unchanged. The first
    conv reads the data's channels and the head gives `num_classes`; the global average pool is
    adaptive, so 32×32 inputs work (they reach 1×1 after layer4)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths, cin = (64, 128, 256, 512), 64
        for index, width in enumerate(widths, start=1):
            stride = 1 if index == 1 else 2
            setattr(self, f"layer{index}",
                    nn.Sequential(_ResidualPair(cin, width, stride), _ResidualPair(width, width, 1)))
            cin = width
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        _init_like_torchvision(self, linear_std=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """ResNet-18 with torchvision's state-dict keys and shapes (11,689,512 parameters for 3
    channels and 1000 classes)."""
    return ResNet18(input_shape[0], num_classes)


def _conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (no bias, 'same' padding) → BN → ReLU6: children 0, 1, 2 as in torchvision."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups,
                  bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class _InvertedResidual(nn.Module):
    """MobileNetV2's block, all in `conv`: a 1×1 expansion (left out when the ratio is 1), a
    3×3 depthwise conv, a linear 1×1 projection and its BN; the input is added back when the
    stride is 1 and the width does not change."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        steps: list[nn.Module] = []
        if expand != 1:
            steps.append(_conv_bn_relu6(cin, hidden, 1))
        steps += [
            _conv_bn_relu6(hidden, hidden, 3, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*steps)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_res_connect else y


# (expansion t, width c, repeats n, first stride s), as in the MobileNetV2 paper's Table 2.
_MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) laid out like torchvision's `mobilenet_v2()`: `features.0` the
    stem, `features.1`…`features.17` the inverted residual blocks, `features.18` the 1×1 conv to
    1280, then `classifier` (dropout 0.2, linear). Pooling is functional, as there, so the
    module names match too."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(in_channels, 32, 3, stride=2)]
        cin = 32
        for expand, width, repeats, stride in _MOBILENET_V2_STAGES:
            for index in range(repeats):
                layers.append(_InvertedResidual(cin, width, stride if index == 0 else 1, expand))
                cin = width
        layers.append(_conv_bn_relu6(cin, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))
        _init_like_torchvision(self, linear_std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """MobileNetV2 with torchvision's state-dict keys and shapes (3,504,872 parameters for 3
    channels and 1000 classes)."""
    return MobileNetV2(input_shape[0], num_classes)


def small_cnn(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Seed 003's initial architecture: three layers of one 3×3 conv each (16, 32, 64 filters,
    batch norm, ReLU; 2×2 max pooling after the first two), global average pooling and a linear
    classifier: a small base for `jetsynth grow` to widen and deepen."""
    layers: list[nn.Module] = []
    cin = input_shape[0]
    for index, width in enumerate((16, 32, 64)):
        layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        if index < 2:
            layers.append(nn.MaxPool2d(2))
        cin = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


Factory = Callable[[tuple[int, int, int], int], nn.Module]

ARCHITECTURES: dict[str, Factory] = {
    "lenet5": lenet5,
    "alexnet-cifar": alexnet_cifar,
    "resnet-small": resnet_small,
    "resnet18": resnet18,
    "mobilenet-v2": mobilenet_v2,
    "small-cnn": small_cnn,
}


IN_PROCESS = "<python:"
"""How a run names an architecture given to the Python API as a callable: `<python:module.name>`
describes it and can never be imported (the angle brackets are no module's name)."""


def in_process_arch(factory: Factory) -> str:
    """The recorded name of a factory (a function or an nn.Module class) given as an object."""
    module = getattr(factory, "__module__", None) or "?"
    name = getattr(factory, "__qualname__", None) or type(factory).__qualname__
    return f"{IN_PROCESS}{module}.{name}>"


def architectures_with_keys(keys: set[str]) -> list[str]:
    """The built-in architectures whose state dicts have exactly `keys` (batch norm's step
    counters aside): what a checkpoint that does not fit the chosen --arch would fit."""
    def names(found) -> set[str]:
        return {k for k in found if not k.endswith("num_batches_tracked")}

    wanted = names(keys)
    fits = []
    for name, factory in ARCHITECTURES.items():
        if names(factory((3, 32, 32), 10).state_dict()) == wanted:
            fits.append(name)
    return fits


def _split_user_arch(arch: str) -> tuple[str, str, bool]:
    """(module or file, function, is_file) of a `module:function` or `file.py:function`."""
    if arch.startswith(IN_PROCESS):
        raise JetsynthError(f"the architecture {arch} was a Python callable given to "
                            "jetsynth.evolve, not a name jetsynth can import: open the run with "
                            "jetsynth.open_run(RUN, arch=the_same_callable)")
    source, sep, func_name = arch.rpartition(":")
    if not sep or not source or not func_name or not func_name.isidentifier():
        names = ", ".join(ARCHITECTURES)
        raise JetsynthError(
            f"unknown architecture '{arch}': use one of {names}, timm:NAME, torchvision:NAME, "
            "module:function or file.py:function"
        )
    return source, func_name, source.endswith(".py")


LIBRARIES = {"timm": "timm", "torchvision": "torchvision"}
"""`--arch LIBRARY:NAME`: a model of an installed library by its own name (optional extras)."""


def library_arch(arch: str) -> tuple[str, str] | None:
    """(library, model name) of `timm:NAME` or `torchvision:NAME`, else None."""
    library, sep, name = arch.partition(":")
    return (library, name) if sep and library in LIBRARIES and name else None


def _library_factory(library: str, name: str, arch: str) -> Factory:
    """A factory for a library's model by name, built for the data's classes and channels. The
    library is imported when a model is first built; here only its presence is checked."""
    if importlib.util.find_spec(LIBRARIES[library]) is None:
        raise JetsynthError(f"`arch` {arch} needs {library}, which is not installed here: "
                            f"pip install {library} (an optional extra), or use a built-in `arch`",
                            setting="arch")

    def build(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        try:
            module = importlib.import_module(f"{library}.models" if library == "torchvision" else library)
        except Exception as exc:  # a broken install raises anything (e.g. a torch it does not fit)
            raise JetsynthError(f"`arch` {arch}: {library} is installed but cannot be imported "
                                f"({type(exc).__name__}: {exc}); reinstall it to match torch "
                                f"{torch.__version__}", setting="arch") from None
        if library == "timm":
            if name not in module.list_models() and name not in module.list_models(pretrained=True):
                raise JetsynthError(f"timm has no model '{name}' (`arch` {arch}): give a name from "
                                    "timm.list_models(), e.g. `arch` timm:resnet18", setting="arch")
            return module.create_model(name, pretrained=False, num_classes=num_classes,
                                       in_chans=input_shape[0])
        if name not in module.list_models():
            raise JetsynthError(f"torchvision has no model '{name}' (`arch` {arch}): give a name from "
                                "torchvision.models.list_models(), e.g. `arch` torchvision:resnet18",
                                setting="arch")
        return _with_channels(module.get_model(name, weights=None, num_classes=num_classes),
                              input_shape[0], arch)

    return build


def _with_channels(model: nn.Module, channels: int, arch: str) -> nn.Module:
    """`model` (built for RGB) with its first conv reading `channels` channels (freshly
    initialised; --ancestor-weights then adapts RGB weights to it, see `weights`)."""
    if channels == 3:
        return model
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, nn.Conv2d(
                channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                module.dilation, module.groups, module.bias is not None))
            return model
    raise JetsynthError(f"`arch` {arch} has no Conv2d to read {channels}-channel images", setting="arch")


def _library_constructor(source: str, arch: str) -> None:
    """Refuse `timm:create_model`-like names given as module:function for a library's own
    constructors, which take other arguments than (input_shape, num_classes)."""
    library = source.split(".")[0]
    if library in LIBRARIES:
        raise JetsynthError(
            f"`arch` {arch} names {library}'s own constructor, which does not take jetsynth's "
            f"(input_shape, num_classes): give `arch` {library}:MODEL, e.g. `arch` {library}:resnet18",
            setting="arch")


def canonical_arch(arch: str) -> str:
    """The architecture as it is recorded: built-ins, library models and `module:function` as
    typed, a `file.py:function` with the file's absolute path (so a resume from elsewhere finds
    it)."""
    if arch in ARCHITECTURES or library_arch(arch) is not None:
        return arch
    if growth.is_grown(arch):
        base, transforms = growth.split_arch(arch)
        return growth.join_arch(canonical_arch(base), transforms)
    source, func_name, is_file = _split_user_arch(arch)
    return f"{Path(source).expanduser().resolve()}:{func_name}" if is_file else arch


def untrusted_message(arch: str) -> str:
    """The one line that says what would be imported and how to allow it."""
    source, func_name, is_file = _split_user_arch(arch)
    what = f"run the file {source}" if is_file else f"import the module '{source}'"
    return (f"the recorded architecture '{arch}' is user code: building it would {what} and call "
            f"{func_name}(); jetsynth imports code only on your word: give --arch {arch} again, "
            "or --trust-code")


def _import_file(path_text: str, arch: str):
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise JetsynthError(f"no file {path} for `arch` {arch}", setting="arch")
    name = "jetsynth_user_" + "".join(c if c.isalnum() else "_" for c in str(path.resolve()))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise JetsynthError(f"cannot load {path} as Python for `arch` {arch}", setting="arch")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file may raise anything
        del sys.modules[name]
        raise JetsynthError(f"running {path} for `arch` {arch} failed: "
                            f"{type(exc).__name__}: {exc}", setting="arch") from None
    return module


def _import_module(source: str, arch: str):
    """`source` imported as a module, found on sys.path or in the current directory (as
    `python -m` would find it)."""
    here = str(Path.cwd())
    added = here not in sys.path and "" not in sys.path
    if added:
        sys.path.append(here)
    try:
        return importlib.import_module(source)
    except ImportError as exc:
        raise JetsynthError(f"cannot import '{source}' for `arch` {arch} ({exc}); put {source}.py in "
                            "the current directory or on PYTHONPATH, or give `arch` FILE.py:function",
                            setting="arch"
                            ) from None
    except Exception as exc:  # the user's module may raise anything
        raise JetsynthError(f"importing '{source}' for `arch` {arch} failed: "
                            f"{type(exc).__name__}: {exc}", setting="arch") from None
    finally:
        if added:
            sys.path.remove(here)


def resolve_factory(arch: str, trusted: bool) -> Factory:
    """The factory an architecture name stands for. A built-in name is a dict lookup and never
    imports anything. `module:function` and `file.py:function` are user code: they are imported
    only when `trusted` (the user typed them on this command line, or gave --trust-code);
    otherwise, and for any name read from a run's files, the one-line error says what would be
    imported and how to allow it."""
    if not isinstance(arch, str):
        raise JetsynthError(f"architecture {arch!r} is not a name")
    if arch in ARCHITECTURES:
        return ARCHITECTURES[arch]
    if library_arch(arch) is not None:  # an installed library's model: no user code
        return _library_factory(*library_arch(arch), arch)
    if growth.is_grown(arch):  # a base architecture grown by R2R transforms (see growth)
        return growth.grown_factory(resolve_factory(growth.split_arch(arch)[0], trusted), arch)
    source, func_name, is_file = _split_user_arch(arch)
    if not is_file:
        _library_constructor(source, arch)
    if not trusted:
        raise JetsynthError(untrusted_message(arch))
    module = _import_file(source, arch) if is_file else _import_module(source, arch)
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise JetsynthError(f"'{source}' has no callable '{func_name}' (from `arch` {arch})", setting="arch")
    return factory


def stored_factories(recorded: str, typed: str | None, trust_code: bool, where: str) -> dict[str, Factory]:
    """The factories a command may build a stored run's members with, by architecture name:
    the run's recorded architecture (`where` names the run), resolved on the user's word, i.e.
    `typed` (that command's --arch, which must name the same architecture) or `trust_code`.
    Built-ins need neither."""
    if typed is not None and canonical_arch(typed) != recorded:
        raise JetsynthError(f"{where} was made with `arch` {recorded}, not {typed}: give the same "
                            "`arch`, or none", setting="arch")
    factory = resolve_factory(recorded, trusted=trust_code or typed is not None)
    return {recorded: factory}


def instantiate(factory: Factory, arch: str, input_shape: tuple[int, int, int],
                num_classes: int) -> nn.Module:
    """Call a resolved factory; one that fails or returns a non-module is a user error."""
    try:
        model = factory(tuple(input_shape), int(num_classes))
    except JetsynthError:
        raise
    except Exception as exc:  # a user's factory may raise anything
        raise JetsynthError(f"`arch` {arch} failed to build a model: {exc}", setting="arch") from None
    if not isinstance(model, nn.Module):
        raise JetsynthError(f"`arch` {arch} returned {type(model).__name__}, not a torch nn.Module",
                            setting="arch")
    return model


def build_model(arch: str, input_shape: tuple[int, int, int], num_classes: int,
                factory: Factory | None = None) -> nn.Module:
    """Instantiate an ancestor with `factory`, or (None) the one `arch` names: the caller's own
    word, so user code is imported. Code that builds from a run's files passes the factory it
    resolved with `resolve_factory`/`stored_factories` instead."""
    return instantiate(factory or resolve_factory(arch, trusted=True), arch, input_shape, num_classes)


def check_input_shape(input_shape, num_classes, where: str) -> tuple[tuple[int, int, int], int]:
    """`input_shape` (three positive ints) and `num_classes` (a positive int) read from a file,
    checked as data."""

    def positive(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0

    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3 or not all(
        positive(v) for v in input_shape
    ):
        raise JetsynthError(f"{where}: input_shape must be three positive integers, not {input_shape!r}")
    if not positive(num_classes):
        raise JetsynthError(f"{where}: num_classes must be a positive integer, not {num_classes!r}")
    return tuple(input_shape), num_classes
