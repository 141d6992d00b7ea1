"""Shipping one member of a run: pick it (by id or by the deployment rule), optionally train it
longer with its structure fixed, and export it to ONNX with its run's metadata and parity on the
run's test split. This reads a run directory and trains, so it sits above the export of a genome."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from jetsynth.core.genome import Genome
from jetsynth.core.records import Finetune, MemberRecord
from jetsynth.core.selection import best_member, pick_member, selection_accuracy
from jetsynth.data.dataset import Dataset
from jetsynth.data.load import load_dataset
from jetsynth.errors import JetsynthError
from jetsynth.nn.device import resolve_devices
from jetsynth.nn.models import Factory, stored_factories
from jetsynth.run.config import EvolveConfig
from jetsynth.run.rundir import RunDirectory, grown_pick, load_records
from jetsynth.run.train import TrainConfig, train_genome
from jetsynth.ship.export import DEFAULT_OPSET, ExportResult, compact_genome, export_genome, genome_metadata
from jetsynth.ship.state_dict import StateDictResult, export_state_dict

FORMATS = ("onnx", "state-dict")


@dataclass(frozen=True)
class ShippedMember:
    """The member an export shipped: its `record` (with the new test and validation accuracies
    when it was fine-tuned), why the deployment rule picked it (`picked_because`, in words; None
    when it was named or is a grow run's pick) and its fine-tuning (None: none)."""

    record: MemberRecord
    picked_because: str | None = None
    finetune: Finetune | None = None


def export_member(
    run_dir: Path,
    out: Path,
    generation: int | None = None,
    member: int | None = None,
    max_drop: float = 0.01,
    precision: str = "fp16",
    io_precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    check_parity: bool = True,
    finetune_epochs: int = 0,
    arch: str | None = None,
    trust_code: bool = False,
    channel_multiple: int | None = None,
    on_step=None,
    factories: dict[str, Factory] | None = None,
    dataset: Dataset | None = None,
    output_format: str = "onnx",
    device: str = "auto",
) -> tuple[ExportResult | StateDictResult, ShippedMember]:
    """Export one member of a run (by generation/member, else the deployment pick of
    `selection.best_member`), with parity measured on the run's test split. Returns the result
    and the member shipped (`ShippedMember`: why it was picked, in words, when it was). With
    `finetune_epochs`, the member is first trained that many epochs more on the run's data, its
    structure fixed: evolution retrains each offspring briefly, and the one network that ships
    is worth a longer training (the record then holds the new accuracy, and `finetune` the
    epochs and the accuracy before). A run made with user code (`module:function`,
    `file.py:function`) is built only on the user's word: `arch` (the command line's --arch,
    the run's own) or `trust_code`. `on_step(done, total)`: fine-tuning progress, per optimiser
    step. `factories` and `dataset` (the Python API's objects, which no name imports) stand in
    for resolving the run's architecture and loading its data. `output_format` 'state-dict'
    writes the compacted member as a plain safetensors state dict with its architecture in the
    metadata (`ship.state_dict`) instead, without parity. `channel_multiple`: pad each channel
    space to a multiple of it (None: the run's own, whose widths evolution already kept, so the
    file is the one --bench timed). `device`: where fine-tuning trains (--device, as `evolve`
    takes it), in the run's --amp (its default for that device when the run left it open)."""
    if output_format not in FORMATS:
        raise JetsynthError(f"`format` must be one of {', '.join(FORMATS)}, not {output_format}",
                            setting="format")
    if output_format != "onnx":
        check_parity = False
    if finetune_epochs < 0:
        raise JetsynthError(f"`finetune_epochs` must be 0 or more, not {finetune_epochs}",
                            setting="finetune_epochs")
    trains_on = resolve_devices(device)[0] if finetune_epochs else "cpu"
    config, records = load_records(Path(run_dir))
    factories = factories or stored_factories(config.arch, arch, trust_code, str(run_dir))
    grown = grown_pick(Path(run_dir), records) if generation is None and member is None else None
    if grown is not None:
        shipped = ShippedMember(grown)
    elif generation is None and member is None:
        shipped = ShippedMember(*best_member(records, selection_accuracy(records[0]) - max_drop))
    else:
        shipped = ShippedMember(pick_member(records, generation, member, max_drop))
    genome = RunDirectory(Path(run_dir), factories).genome(shipped.record.id)
    if dataset is None and (check_parity or finetune_epochs):
        try:
            dataset = load_dataset(config.data_spec())
        except JetsynthError as exc:
            need = ("--finetune-epochs" if finetune_epochs
                    else "the parity check; add --no-parity to skip it")
            raise JetsynthError(f"{exc} (needed for {need})", setting=exc.settings) from None
    if finetune_epochs:
        genome, shipped = finetune_member(genome, shipped, dataset, config, finetune_epochs, on_step,
                                          trains_on)
    metadata = genome_metadata(genome, shipped.record, Path(run_dir), shipped.finetune)
    if channel_multiple is None:
        channel_multiple = config.channel_multiple or 1
    if output_format == "state-dict":
        compacted = compact_genome(genome, channel_multiple)
        return export_state_dict(genome, compacted.model, out, precision, compacted.macs,
                                 metadata), shipped
    images = dataset.test_x if check_parity else None
    result = export_genome(genome, out, precision, io_precision, opset,
                           metadata, images, channel_multiple)
    return result, shipped


def finetune_member(genome: Genome, shipped: ShippedMember, dataset, config: EvolveConfig,
                    epochs: int, on_step=None, device: str = "cpu") -> tuple[Genome, ShippedMember]:
    """The member trained `epochs` more on `device` with the run's batch size, learning rate,
    precision, mixed precision and seed (`config`: the run's settings), and the
    member shipped with the new test and validation accuracies."""
    training = TrainConfig(epochs=epochs, batch_size=config.batch_size, lr=config.lr,
                           precision=config.precision, device=device,
                           amp=config.amp or "auto")
    result = train_genome(genome, dataset, training, config.seed, on_step)
    accuracy = result.metrics["accuracy"]
    record = shipped.record
    tuned = replace(record, accuracy=accuracy, val_accuracy=result.metrics.get("val_accuracy"))
    return result.genome, replace(shipped, record=tuned,
                                  finetune=Finetune(epochs, record.accuracy, device))
