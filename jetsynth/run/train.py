"""Training one individual: a self-contained task (genome, data, config, seed) → trained genome
and its metrics, so an executor can run it in this process or elsewhere.

The network is trained *compacted* (dead units physically removed): it costs what survives, not
what the ancestor was. Masks inside surviving filters are re-applied after every step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from jetsynth.core.genome import Genome
from jetsynth.data.dataset import MappedImages
from jetsynth.data.load import Dataset, DataSpec, load_dataset
from jetsynth.data.stream import TrainingStream
from jetsynth.errors import JetsynthError
from jetsynth.nn.checkpoint import load_checkpoint, remove_checkpoint, save_checkpoint
from jetsynth.nn.compact import compact, expand_state
from jetsynth.nn.device import AMP_DTYPES, resolve_amp
from jetsynth.nn.finite import all_finite
from jetsynth.nn.gpu_lock import gpu_turn
from jetsynth.nn.layout import as_channels_last, channels_last


@dataclass(frozen=True)
class TrainConfig:
    """epochs over the training split; lr: Adam's initial learning rate, annealed by a cosine
    to 5 % over the run; precision: 'fp16' restricts the trained weights to half precision
    (seed 004) before evaluation and before the next generation inherits them. `head`: a
    freshly replaced head (the module's name) that trains alone for `head_epochs` epochs before
    the `epochs` of the whole network, so that a random head does not wreck pretrained features.
    device: the torch device that trains and evaluates (`nn.device`); amp: mixed precision
    (bf16, fp16 with a gradient scaler, or off: fp32, bit for bit reproducible on the CPU; auto:
    `nn.device.resolve_amp`'s default for the device, decided where the member trains)."""

    epochs: int = 2
    batch_size: int = 128
    lr: float = 1e-3
    precision: str = "fp32"
    head: str | None = None
    head_epochs: int = 0
    device: str = "cpu"
    amp: str = "off"

    def key(self) -> dict:
        """What identifies this training in a checkpoint: not where it trains (a run resumed on
        another device continues), and the head fields only when set (so checkpoints from before
        they existed still resume)."""
        found = asdict(self)
        del found["device"]
        if self.head is None:
            del found["head"], found["head_epochs"]
        return found


@dataclass
class TrainResult:
    """The trained genome and its accuracy, wall time and epochs (size figures: `metrics`)."""

    genome: Genome
    metrics: dict


EVAL_BATCH = 256
"""Images per forward pass in `evaluate` on a GPU, and on the CPU for images up to 64×64: on one
CPU thread LeNet-5 evaluates MNIST about three times faster in chunks of 256 than of 1000 (the
activations of a chunk stay in cache)."""
EVAL_PIXELS = EVAL_BATCH * 64 * 64
"""On the CPU, a chunk holds at most this many pixels per channel (20 images at 224×224): the
activations of 256 photos would take gigabytes (MobileNetV2's second block alone, 1.2 GB)."""


def eval_rows(shape, device: torch.device) -> int:
    """Images per evaluation chunk of images shaped `shape` (N, C, H, W) on `device`."""
    if device.type != "cpu":
        return EVAL_BATCH
    return max(1, min(EVAL_BATCH, EVAL_PIXELS // (int(shape[2]) * int(shape[3]))))


def autocast(device: torch.device, amp: str):
    """The autocast context of `amp` (bf16, fp16) on `device`'s kind; no context for off."""
    return nullcontext() if amp == "off" else torch.autocast(device.type, dtype=AMP_DTYPES[amp])


def evaluate(model: nn.Module, images, labels: torch.Tensor, amp: str = "off") -> float:
    """Top-1 accuracy in [0, 1] of `model` (on its own device) over `images` (a tensor or
    `MappedImages`)."""
    correct = 0
    for start, logits in chunked_logits(model, images, amp):
        rows = labels[start : start + len(logits)]
        correct += int((logits.argmax(dim=1).cpu() == rows).sum())
    return correct / len(images)


def chunked_logits(model: nn.Module, images, amp: str = "off") -> Iterator[tuple[int, torch.Tensor]]:
    """(first row, logits in fp32) of `model` in eval mode over `images`, `eval_rows` at a time on
    the model's device, in channels-last layout under inference mode (and `amp`'s autocast); the
    layout is restored when the iteration ends. The layout changes outside inference mode:
    parameters rewritten inside it would become inference tensors that a later training cannot
    use."""
    model.eval()
    device = next(model.parameters()).device
    step = eval_rows(images.shape, device)
    with channels_last(model), torch.inference_mode(), autocast(device, amp):
        for start in range(0, len(images), step):
            chunk = images[start : start + step].to(device, non_blocking=True)
            yield start, model(as_channels_last(chunk)).float()


SCREEN_IMAGES = 2048
"""Training images `screening_rows` picks to compare candidate offspring on: enough to rank draws
that differ by a few filters, cheap next to one epoch of training."""


def screening_rows(count: int, seed: int) -> torch.Tensor:
    """A fixed random choice of up to SCREEN_IMAGES of `count` training rows (an image folder's
    rows come sorted by class)."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:SCREEN_IMAGES]


def screening_images(dataset: Dataset, rows: torch.Tensor):
    """The training images at `rows` for `inherited_loss`, kept as stored (uint8) when the
    dataset is: 2,048 photos of 224×224 would take 1.2 GB as floats."""
    images = dataset.train_x
    return images.subset(rows) if isinstance(images, MappedImages) else images[rows]


def inherited_loss(genome: Genome, images, labels: torch.Tensor, device: str = "cpu",
                   amp: str = "off") -> float:
    """Mean cross-entropy (nats per image) of `genome`'s compacted network as it was inherited,
    before any training: how much of its parents' function the draw kept. Lower is better.
    `images`: a tensor or `MappedImages` (read chunk by chunk); computed on `device`."""
    amp = resolve_amp(None if amp == "auto" else amp, str(device))
    net = compact(genome.build(), genome.topology, genome.masks).model.to(device)
    total = 0.0
    for start, logits in chunked_logits(net, images, amp):
        rows = labels[start : start + len(logits)].to(logits.device)
        total += float(nn.functional.cross_entropy(logits, rows, reduction="sum"))
    return total / len(images)


def restrict_precision(state: dict[str, torch.Tensor], precision: str) -> dict[str, torch.Tensor]:
    """Round floating tensors to fp16 and back (values exactly representable in half)."""
    if precision == "fp32":
        return state
    return {k: v.half().float() if v.is_floating_point() else v for k, v in state.items()}


def train_genome(
    genome: Genome,
    data: Dataset | DataSpec,
    config: TrainConfig,
    seed: int,
    on_step: Callable[[int, int], None] | None = None,
    checkpoint_dir: Path | None = None,
) -> TrainResult:
    """Train `genome` for `config.epochs` epochs and evaluate it on the whole validation split
    (`val_accuracy`, what evolution chooses on; None without one) and test split (`accuracy`,
    what it reports).
    `on_step(done, total)` is called after every optimiser step (for progress displays). With
    `checkpoint_dir`, each finished epoch is saved there and a matching checkpoint is resumed."""
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    try:
        return _train(genome, dataset, config, seed, on_step, checkpoint_dir)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        c, h, w = dataset.input_shape
        raise JetsynthError(
            f"{genome.lineage.id}: out of GPU memory on {config.device} training batches of "
            f"{config.batch_size} images of {c}×{h}×{w}; lower --batch-size (e.g. "
            f"{max(1, config.batch_size // 2)}) or --input-size, or use --amp bf16; the epochs "
            "already trained are saved: continue with --resume") from None


def _train(genome: Genome, dataset: Dataset, config: TrainConfig, seed: int,
           on_step: Callable[[int, int], None] | None, checkpoint_dir: Path | None) -> TrainResult:
    started = time.perf_counter()
    config = replace(config, amp=resolve_amp(None if config.amp == "auto" else config.amp,
                                             config.device))
    device = torch.device(config.device)
    if device.type == "cuda":  # this GPU's generator only: other GPUs may be training members
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)
    else:
        torch.manual_seed(seed)
    compacted = compact(genome.build(), genome.topology, genome.masks)
    net = compacted.model.to(device)
    masked = [(net.get_submodule(name).weight, mask.to(device))
              for name, mask in compacted.masks.items()]
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    scaler = gradient_scaler(device, config.amp)
    order = torch.Generator().manual_seed(seed)
    key = {"member": genome.lineage.id, "seed": seed, "config": config.key()}
    first_epoch = 0
    if checkpoint_dir is not None:
        first_epoch = load_checkpoint(checkpoint_dir, key, net, optimizer, order, scaler)
    head_epochs = config.head_epochs if config.head is not None else 0

    def save(completed: int) -> None:
        if checkpoint_dir is not None and completed < head_epochs + config.epochs:
            save_checkpoint(checkpoint_dir, key, completed, net, optimizer, order, scaler)

    def remask() -> None:
        with torch.no_grad():
            for weight, mask in masked:
                weight.mul_(mask)

    steps = (len(dataset.train_x) + config.batch_size - 1) // config.batch_size
    head_steps, body_steps = steps * head_epochs, steps * config.epochs
    if first_epoch < head_epochs:
        _fit_head(net, dataset, replace(config, epochs=head_epochs), optimizer, order, first_epoch,
                  remask, None if on_step is None else
                  (lambda done, _total: on_step(done, head_steps + body_steps)), save, scaler)
    fit(net, dataset, config, optimizer, order, first_epoch=max(0, first_epoch - head_epochs),
        after_step=remask,
        on_step=None if on_step is None else
        (lambda done, _total: on_step(head_steps + done, head_steps + body_steps)),
        after_epoch=lambda completed: save(head_epochs + completed), scaler=scaler)
    net.cpu()
    state = restrict_precision(expand_state(compacted, genome.topology, genome.state), config.precision)
    broken = sorted(k for k, v in state.items()
                    if not all_finite(v))
    if broken:  # never recorded: nothing may be bred, exported or timed from such weights
        raise JetsynthError(
            f"{genome.lineage.id}: training diverged ({broken[0]} holds NaN or infinite values"
            f"{' in fp16' if config.precision == 'fp16' else ''} at --lr {config.lr:g}); start a "
            "new run with a lower --lr")
    trained = replace(genome, state=state, precision=config.precision)
    # the trained compacted net is what compaction of the trained genome would rebuild, unless
    # its weights were just rounded to fp16
    evaluated = net if config.precision == "fp32" else compact(
        trained.build(), trained.topology, trained.masks).model
    evaluated.to(device)
    accuracy = evaluate(evaluated, dataset.test_x, dataset.test_y, config.amp)
    validated = dataset.val_x is not None and len(dataset.val_x) > 0
    metrics = {
        "accuracy": accuracy,
        "val_accuracy": (evaluate(evaluated, dataset.val_x, dataset.val_y, config.amp)
                         if validated else None),
        "train_seconds": round(time.perf_counter() - started, 3),
        "epochs": config.epochs,
        "device": config.device,
        "amp": config.amp,
    }
    if checkpoint_dir is not None:
        remove_checkpoint(checkpoint_dir)
    return TrainResult(trained, metrics)


def _fit_head(net: nn.Module, dataset: Dataset, config: TrainConfig, optimizer: torch.optim.Optimizer,
              order: torch.Generator, first_epoch: int, after_step, on_step, after_epoch,
              scaler: torch.amp.GradScaler | None = None) -> None:
    """`fit` with every parameter outside `config.head` frozen (Adam skips what has no
    gradient): a linear probe of the pretrained features with the new head."""
    prefix = f"{config.head}."
    frozen = [p for name, p in net.named_parameters() if not name.startswith(prefix) and p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    try:
        fit(net, dataset, config, optimizer, order, first_epoch=first_epoch, after_step=after_step,
            on_step=on_step, after_epoch=after_epoch, scaler=scaler)
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)


def fit(
    net: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    order: torch.Generator,
    first_epoch: int = 0,
    after_step: Callable[[], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    after_epoch: Callable[[int], None] | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """The project's one training loop: epochs `first_epoch` to `config.epochs` of
    `config.batch_size` training images in the order `order` draws, cross-entropy, the
    learning rate of `cosine_lr` over the whole run set before every step, in channels-last
    layout (see `nn.layout`). `after_step()` runs after every optimiser step (re-applying masks),
    `on_step(done, total)` reports progress in steps, `after_epoch(completed)` follows every epoch
    (checkpoints). Evolution's members and the Torch-Pruning comparison both train through it,
    so the two sides get the same trainer. On `config.device` (where `net` already is), in
    `config.amp`'s mixed precision (fp16 with a gradient scaler); batches come from
    `data.stream.TrainingStream`, prepared in the background. `scaler`: fp16's gradient scaler
    when the caller keeps it (checkpoints); else one of the loop's own. On a GPU, each step holds the GPU
    alone (`nn.gpu_lock`): a member timed on it meanwhile waits for the step, and the next step
    for the timing."""
    device = torch.device(config.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    stream = TrainingStream(dataset, device)
    scaler = scaler if scaler is not None else gradient_scaler(device, config.amp)
    n = len(dataset.train_x)
    steps_per_epoch = (n + config.batch_size - 1) // config.batch_size
    total = steps_per_epoch * config.epochs
    step = first_epoch * steps_per_epoch
    net.train()
    with channels_last(net):
        for epoch in range(first_epoch, config.epochs):
            permutation = torch.randperm(n, generator=order)
            for images, labels in stream.batches(permutation, config.batch_size, order):
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(config.lr, step, total)
                with gpu_turn(config.device):
                    update(net, as_channels_last(images), labels, optimizer, scaler, device,
                           config.amp)
                    if after_step is not None:
                        after_step()
                step += 1
                if on_step is not None:
                    on_step(step, total)
            if after_epoch is not None:
                after_epoch(epoch + 1)


def update(net: nn.Module, images: torch.Tensor, labels: torch.Tensor,
           optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
           device: torch.device, amp: str) -> None:
    """One optimiser step on `net`'s cross-entropy over a batch, under `amp`'s autocast on
    `device`, through fp16's gradient `scaler` when there is one (it skips a step whose
    gradients overflow)."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, amp):
        value = nn.functional.cross_entropy(net(images), labels)
    if scaler is None:
        value.backward()
        optimizer.step()
    else:
        scaler.scale(value).backward()
        scaler.step(optimizer)
        scaler.update()


def gradient_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler | None:
    """fp16's gradient scaler on `device`'s kind (fp16 gradients underflow unscaled); None for
    other arithmetic."""
    return torch.amp.GradScaler(device.type) if amp == "fp16" else None


def cosine_lr(base: float, step: int, total: int) -> float:
    """Learning rate at `step` of `total`: a cosine from `base` down to 5 % of it."""
    floor = 0.05 * base
    return floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * step / max(total, 1)))
