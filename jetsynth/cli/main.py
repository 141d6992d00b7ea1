"""The `jetsynth` command line: thin click commands that parse options and call the library.

A JetsynthError (bad input) ends with one line on stderr and exit status 2; Ctrl-C ends with
status 130 and a hint to resume.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from jetsynth.cli.calibrate import calibrate
from jetsynth.cli.common import TERMINATED, OneLineGroup, interrupted_status
from jetsynth.cli.common import fail as _fail
from jetsynth.cli.deploy import build, deploy, devices
from jetsynth.cli.evolve_options import EvolveCommand
from jetsynth.cli.grow import grow
from jetsynth.cli.outputs import OUTPUT
from jetsynth.cli.progress import StepProgress, make_console, run_observer
from jetsynth.cli.types import BATCH, COUNT, EPOCHS, FRACTION, SECONDS, THREADS, TRIALS, WARMUP, Number
from jetsynth.core.records import MemberRecord
from jetsynth.errors import JetsynthError
from jetsynth.run.bounds import DAY, MAX_COUNT

if TYPE_CHECKING:
    from jetsynth.run.config import EvolveConfig


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jetsynth")
def cli() -> None:
    """Evolve small, fast neural networks and ship them to NVIDIA Jetson devices."""


@cli.command(cls=EvolveCommand, after={"seed": ("run_dir", "resume"), "ancestor_weights": ("trust_code",)})
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the run is written [default: runs/evolve-<time>].")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir.")
@click.option("--trust-code", is_flag=True,
              help="--resume: allow importing the user code (module:function, file.py:function) that "
                   "the run's config.json names, without giving --arch again.")
@click.pass_context
def evolve(ctx: click.Context, run_dir: Path | None, resume: bool, trust_code: bool, **options) -> None:
    """Evolve generations of offspring networks from a trained ancestor."""

    from jetsynth.nn.models import canonical_arch
    from jetsynth.run.config import EvolveConfig, unconfirmed_devices
    from jetsynth.run.evolve import evolve as run_evolution
    from jetsynth.run.rundir import RunDirectory, load_records

    if resume and run_dir is None:
        _fail("--resume needs --run-dir DIR naming the run to continue")
    run_dir = run_dir or Path("runs") / time.strftime("evolve-%Y%m%d-%H%M%S")
    options["alphas"] = tuple(options["alphas"]) or None
    given = {
        name: value
        for name, value in options.items()
        if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
    }
    options["bench"], *pool = options["bench"] or ("none",)
    options["bench_pool"] = tuple(pool)
    if "bench" in given:  # the pool is the rest of the --bench list
        given["bench_pool"] = None
    try:
        options["arch"] = canonical_arch(options["arch"])
        given = {name: options[name] for name in given}
        stored = RunDirectory(run_dir).stored_config() if resume else None
        unconfirmed = unconfirmed_devices(stored, "bench" in given) if stored else []
        if unconfirmed:
            listed = " ".join(f"--bench {shlex.quote(n)}" for n in (stored.bench, *stored.bench_pool))
            _fail(f"{run_dir}/config.json times members on {', '.join(unconfirmed)}, which neither "
                  f"this command line nor your device inventory names; a run directory does not "
                  f"choose where jetsynth connects: add {listed} to allow it")
        base = stored.flat() if stored else options
        config = EvolveConfig(**{**base, **given})
        timing = config.timing_seconds()
        if timing > DAY:
            click.echo(f"warning: timing {config.generations:,} generations of {config.population:,} "
                       f"members takes at least {timing / 3600:,.1f} hours (--bench-seconds × 5 "
                       "trials per timed member); give fewer generations, --measure-every K or a "
                       "--target-fps or --patience that can end the run", err=True)
        with run_observer() as observer:
            # user code is imported on the command line's word only: --arch typed, or --trust-code
            run_evolution(config, run_dir, resume=resume, observer=observer,
                          trust_code=trust_code or "arch" in given)
        _print_report(run_dir, *load_records(run_dir), make_console())
        records = load_records(run_dir)[1]
        click.echo(_ship_line(run_dir, config, records))
        if config.target_fps is not None:  # last: whether the run did what was asked
            click.echo(_target_outcome(run_dir, config, records))
    except JetsynthError as exc:
        _fail(exc)
    except KeyboardInterrupt as exc:
        status = interrupted_status(exc)
        click.echo(f"\n{'terminated' if status == TERMINATED else 'interrupted'}: continue with  "
                   f"jetsynth evolve --run-dir {shlex.quote(str(run_dir))} --resume", err=True)
        sys.exit(status)


def _ship_line(run_dir: Path, config, records: list[MemberRecord]) -> str:
    """One line: where the run stopped, and the member to ship (the pick of `export --best` at
    this run's floor) with why."""
    from jetsynth.core.selection import pick_member, selection_accuracy
    from jetsynth.core.stopping import stale_generations

    config = config.with_policies()
    floor = config.floor(selection_accuracy(records[0]))
    last = max(r.generation for r in records)
    stopped = f"stopped after generation {last}"
    if config.patience is not None and stale_generations(records, floor) >= config.patience:
        stopped += f": {config.patience} generations without a smaller or faster member at the floor"
    chance = records[0].chance_accuracy
    if chance is not None:
        return (f"{stopped}; nothing to ship: the ancestor's accuracy "
                f"{selection_accuracy(records[0]):.4f} is at chance ({chance:.4f}), so the floor "
                "means nothing; train the ancestor longer (--ancestor-epochs, --lr) or check the data")
    ship = pick_member(records, floor=floor)
    if selection_accuracy(ship) < floor:
        return f"{stopped}; no member keeps the floor {floor:.4f}: ship the ancestor or relax it"
    speed = f", {ship.fps:,.0f} images/s" if ship.fps else ""
    return (f"{stopped}; ship {ship.id} ({_export_command(run_dir, config.arch, ship)}): "
            f"{ship.mac_reduction:.1f}× fewer MACs, "
            f"{ship.synaptic_efficiency:.1f}× fewer synapses{speed}, validation accuracy "
            f"{selection_accuracy(ship):.4f} >= floor {floor:.4f} (test {ship.accuracy:.4f}); "
            "the smallest or fastest member at the floor")


def _beside(run_dir: Path, member: str) -> Path:
    """Where the ship line writes a member: beside the run folder, never inside it (`-o` refuses
    a run directory's own files), named for both ('runs/a-g05-m01.onnx')."""
    run_dir = Path(run_dir)
    return run_dir.parent / f"{run_dir.name}-{member}.onnx"


def _export_command(run_dir: Path, arch: str, record: MemberRecord) -> str:
    """The `jetsynth export` command line that ships `record`, runnable as printed: the output
    file beside the run, and --arch for a run built from user code (which export imports only
    on the user's word)."""
    import shlex

    from jetsynth.nn.models import resolve_factory

    command = (f"jetsynth export {shlex.quote(str(run_dir))} -g {record.generation} "
               f"-m {record.member} -o {shlex.quote(str(_beside(run_dir, record.id)))}")
    try:
        resolve_factory(arch, trusted=False)
    except JetsynthError:  # user code: name it, so export may import it
        command += f" --arch {shlex.quote(arch)}"
    return command


def _target_outcome(run_dir: Path, config, records: list[MemberRecord]) -> str:
    """One line: which member reached --target-fps at the accuracy floor, or the fastest that
    kept the floor when none did."""
    from jetsynth.core.selection import selection_accuracy
    from jetsynth.run.evolve import reaches_target

    floor = config.floor(selection_accuracy(records[0]))
    hits = [r for r in records if reaches_target(r, config, selection_accuracy(records[0]))]
    if hits:
        best = max(hits, key=lambda r: r.fps)
        return (f"target reached: {best.id} runs at {best.fps:,.0f} images/s (target "
                f"{config.target_fps:,.0f}) with accuracy {selection_accuracy(best):.4f} on "
                f"validation (floor {floor:.4f}), {best.accuracy:.4f} on test")
    kept = [r for r in records if r.fps and selection_accuracy(r) >= floor]
    fastest = ""
    if kept:
        best = max(kept, key=lambda r: r.fps)
        fastest = (f"; fastest above the floor: {best.id} at {best.fps:,.0f} images/s "
                   f"({100 * best.fps / config.target_fps:.0f} % of the target), validation "
                   f"accuracy {selection_accuracy(best):.4f} "
                   f"({_export_command(run_dir, config.arch, best)})")
    return (f"target {config.target_fps:,.0f} images/s at validation accuracy >= {floor:.4f} "
            f"not reached{fastest}")


def _print_report(run_dir: Path, config: EvolveConfig, records: list[MemberRecord], console) -> None:
    from jetsynth.core.frontier import frontier_rows
    from jetsynth.report.plots import (
        write_frontier_plot,
        write_plots,
        write_population_plots,
        write_pressure_plot,
    )
    from jetsynth.report.run_report import (
        FRONTIER_HEADER,
        PRESSURE_HEADER,
        TABLE1_SOURCE,
        TABLE1_TITLE,
        TABLE2_SOURCE,
        TABLE2_TITLE,
        efficiency_table,
        frontier_table,
        layer_view,
        overlap_by_generation,
        pressure_rows,
        pressure_table,
        run_floor,
        table1_header,
        write_markdown,
    )

    def show(title: str, header: list[str], rows: list[list[str]], source: str | None = None) -> None:
        from rich.table import Table

        from jetsynth.report.text import console_text

        table = Table(title=title, caption=source)
        for column in header:
            table.add_column(console_text(column), justify="right")
        for row in rows:
            table.add_row(*map(console_text, row))
        console.print(table)

    show(TABLE1_TITLE, table1_header(records), efficiency_table(records, config.precision),
         TABLE1_SOURCE)
    show(TABLE2_TITLE, *layer_view(records), TABLE2_SOURCE)
    floor = run_floor(config, records)
    frontier = frontier_rows(records, floor, config.target_fps)
    pressure = None
    repaired = [r for r in records if r.repair]
    if repaired:
        console.print("repaired by growth (--grow-on-drop): " + ", ".join(
            f"{r.id} ({r.repair['transform']}, validation {r.repair['val_before']:.4f} → "
            f"{r.repair['val_after']:.4f}, {'kept' if r.repair['kept'] else 'not kept'})"
            for r in repaired))
    if config.pressure == "adaptive" or config.patience is not None:
        pressure = pressure_rows(records, floor)
    paths = [write_markdown(run_dir, records, frontier, pressure, config.precision),
             *write_plots(run_dir, records, config)]
    if any(row.front for row in frontier):
        show(f"FPS/accuracy frontier per generation (floor {floor:.4f}; * meets the target)",
             FRONTIER_HEADER, frontier_table(frontier))
        paths.append(write_frontier_plot(run_dir, records, floor, config.target_fps, config))
    if pressure:
        show(f"Environmental pressure per generation (floor {floor:.4f})", PRESSURE_HEADER,
             pressure_table(pressure))
        paths.append(write_pressure_plot(run_dir, pressure, config))
    if any(len(r.parents) > 1 for r in records) or config.population > 1:
        show("Average cluster overlap per generation",
             ["Gen.", "Members", "Avg. overlap"],
             [[str(row.generation), str(row.members), f"{100 * row.average_overlap:.2f} %"]
              for row in overlap_by_generation(run_dir, records, config.cluster)],
             "seed 002, Table 1")
        paths += write_population_plots(run_dir, records, config.precision, config)
    for path in paths:
        console.print(f"plot: {path}")


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def report(run_dir: Path, as_json: bool) -> None:
    """Tables and plots of a run (seed 001's Tables 1-2; PNGs under RUN_DIR/report)."""

    from jetsynth.report.run_report import summary
    from jetsynth.run.rundir import load_records

    try:
        if as_json:
            click.echo(json.dumps(summary(run_dir), indent=2))
        else:
            _print_report(run_dir, *load_records(run_dir), make_console())
    except JetsynthError as exc:
        _fail(exc)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--generation", "-g", type=COUNT, required=True, help="Which generation to compare.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def similarity(run_dir: Path, generation: int, as_json: bool) -> None:
    """Pairwise cluster overlap |A∩B|/|A| of a generation (seed 002), with a heatmap PNG."""
    from rich.table import Table

    from jetsynth.core.similarity import average_overlap
    from jetsynth.report.plots import write_similarity_heatmap
    from jetsynth.report.run_report import generation_similarity
    from jetsynth.report.text import console_text
    from jetsynth.run.rundir import load_records

    try:
        config, _ = load_records(run_dir)
        ids, matrix = generation_similarity(run_dir, generation, config.cluster)
    except JetsynthError as exc:
        _fail(exc)
    path = write_similarity_heatmap(run_dir, generation, ids, matrix, config)
    if as_json:
        click.echo(json.dumps({"generation": generation, "members": ids,
                               "overlap": matrix.round(6).tolist(),
                               "average_overlap": average_overlap(matrix),
                               "heatmap": str(path)}, indent=2))
        return
    table = Table(title=f"Cluster overlap, generation {generation} (row A, column B: |A∩B|/|A|)")
    table.add_column("A \\ B")
    for mid in ids:
        table.add_column(console_text(mid), justify="right")
    for mid, row in zip(ids, matrix, strict=True):
        table.add_row(console_text(mid), *[f"{100 * v:.1f} %" for v in row])
    console = make_console()
    console.print(table)
    console.print(f"average overlap: {100 * average_overlap(matrix):.2f} %")
    console.print(f"heatmap: {path}")


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--generation", "-g", type=COUNT, default=None, help="Generation of the member (ancestor: 1).")
@click.option("--member", "-m", type=Number(int, 0, MAX_COUNT), default=None,
              help="Member index within the generation.")
@click.option("--best", is_flag=True,
              help="The fastest member within --max-drop of the ancestor's accuracy [default].")
@click.option("--max-drop", type=FRACTION, default=0.01, show_default=True,
              help="--best: largest accuracy loss allowed, as a fraction (0.01 = one point).")
@click.option("--precision", type=click.Choice(["fp16", "fp32"]), default="fp16", show_default=True,
              help="Weights and compute of the exported model.")
@click.option("--io-precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="Type of the input and output tensors.")
@click.option("--opset", type=Number(int, 1, 100), default=13, show_default=True,
              help="ONNX opset; TensorRT 8.2 (Jetson TX1) parses up to 13.")
@click.option("-o", "--output", type=OUTPUT, required=True,
              help="The .onnx file to write.")
@click.option("--parity/--no-parity", default=True, show_default=True,
              help="Compare onnxruntime's outputs with torch's on the run's test split.")
@click.option("--finetune-epochs", type=EPOCHS, default=0, show_default=True,
              help="Train the member this many epochs more on the run's data first, its "
                   "structure fixed (evolution retrains each offspring only briefly).")
@click.option("--arch", default=None,
              help="The run's own user-code architecture (module:function, file.py:function), "
                   "allowing jetsynth to import it.")
@click.option("--trust-code", is_flag=True,
              help="Allow importing the user code the run's config.json names.")
@click.option("--channel-multiple", type=Number(int, 1, 256), default=None,
              help="Pad every channel space to a multiple of this many channels: CPU and GPU "
                   "kernels work on blocks of 8 or 16 channels, and an odd width can run several "
                   "times slower. The padding is all zero, the output the same [default: the "
                   "run's --channel-multiple, whose widths evolution kept: no padding, and the "
                   "file --bench timed].")
@click.option("--format", "output_format", type=click.Choice(["onnx", "state-dict"]), default="onnx",
              show_default=True,
              help="state-dict: the compacted member as a plain safetensors state dict, its "
                   "architecture (widths) in the metadata, loadable without jetsynth.")
@click.option("--device", default="auto", show_default=True,
              help="--finetune-epochs: where to train, auto | cpu | cuda | cuda:N (as evolve).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def export(run_dir: Path, generation: int | None, member: int | None, best: bool, max_drop: float,
           precision: str, io_precision: str, opset: int, output: Path, parity: bool,
           finetune_epochs: int, arch: str | None, trust_code: bool, channel_multiple: int | None,
           output_format: str, device: str, as_json: bool) -> None:
    """Compact a member of a run and export it to ONNX (fp16, opset 13 by default) or as a
    plain state dict."""
    from jetsynth.run.export_run import export_member

    if best and (generation is not None or member is not None):
        _fail("--best picks the member itself: drop --generation/--member, or drop --best")
    try:
        with StepProgress(f"fine-tuning {finetune_epochs} epochs", finetune_epochs > 0) as progress:
            result, shipped = export_member(run_dir, output, generation, member, max_drop, precision,
                                            io_precision, opset, parity, finetune_epochs, arch,
                                            trust_code, channel_multiple,
                                            progress if finetune_epochs else None,
                                            output_format=output_format, device=device)
    except JetsynthError as exc:
        _fail(exc)
    record, tuned = shipped.record, shipped.finetune
    if output_format == "state-dict":
        _state_dict_summary(result, record, as_json)
        return
    summary = {
        "path": str(result.path), "member": record.id, "accuracy": record.accuracy,
        "finetune": tuned.to_json() if tuned else None,
        "synaptic_efficiency": record.synaptic_efficiency, "precision": result.precision,
        "io_precision": result.io_precision, "opset": result.opset, "bytes": result.bytes,
        "macs": result.macs, "params": result.params, "parity": result.parity,
        "picked_because": shipped.picked_because,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{result.path}: member {record.id} (accuracy {record.accuracy:.4f}, "
               f"{record.synaptic_efficiency:.2f}× synaptic efficiency)")
    if shipped.picked_because:
        click.echo(f"  picked {record.id}: {shipped.picked_because}")
    if tuned:
        epochs = f"{tuned.epochs} more epoch" + ("s" if tuned.epochs != 1 else "")
        click.echo(f"  trained {epochs}: accuracy {tuned.accuracy_before:.4f} "
                   f"→ {record.accuracy:.4f}")
    click.echo(f"  {result.precision} weights, {result.io_precision} input/output, opset {result.opset}, "
               f"{result.bytes / 1024:.1f} KiB, {result.params:,} parameters, {result.macs:,} MACs per image")
    if _padding_line(result.macs, record, channel_multiple):
        click.echo(_padding_line(result.macs, record, channel_multiple))
    if opset > 13:
        click.echo("  note: TensorRT 8.2 (Jetson TX1) parses opset 13 at most")
    if result.parity:
        p = result.parity
        click.echo(f"  parity vs torch on {p['images']} test images: max abs {p['max_abs_diff']:.3g}, "
                   f"max rel {p['max_rel_diff']:.3g}, top-1 agreement {100 * p['top1_agreement']:.2f} %")


def _padding_line(macs: int, record: MemberRecord, multiple: int | None) -> str | None:
    """When export padded channels to blocks of `multiple` (None: the run's own): both MAC
    counts, the exported one and the member's own (what the report counts), so the two never
    seem to disagree."""
    own = record.macs
    if own is None or own == macs:
        return None
    blocks = f"multiples of {multiple}" if multiple else "the run's multiple of"
    return (f"  padded to {blocks} channels (--channel-multiple, zeros: same outputs): {macs:,} "
            f"MACs per image exported, {own:,} in the member itself (the report's count); "
            "--channel-multiple 1 exports exactly the live channels")


def _state_dict_summary(result, record: MemberRecord, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"path": str(result.path), "member": record.id, "format": "state-dict",
                               "accuracy": record.accuracy, "precision": result.precision,
                               "bytes": result.bytes, "macs": result.macs, "params": result.params},
                              indent=2))
        return
    click.echo(f"{result.path}: member {record.id} as a state dict (accuracy "
               f"{record.accuracy:.4f}), {result.precision} tensors, {result.bytes / 1024:.1f} KiB, "
               f"{result.params:,} parameters, {result.macs:,} MACs per image; its widths are in the "
               "safetensors metadata ('modules'), see 'Bring your model' in docs/guide.md to load it")


@cli.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--backend", type=click.Choice(["ort-cpu", "ort-cuda", "ort-trt", "torch-cpu", "torch-cuda",
                                              "trt"]), default=None,
              help="[default: ort-cpu for .onnx files, torch-cpu for member folders, trt for engines "
                   "built here]")
@click.option("--batch", type=BATCH, default=1, show_default=True, help="Images per query.")
@click.option("--duration", type=SECONDS, default=2.0, show_default=True,
              help="Minimum seconds of timed queries.")
@click.option("--iterations", type=COUNT, default=50, show_default=True, help="Minimum timed queries.")
@click.option("--warmup", type=WARMUP, default=0.5, show_default=True, help="Seconds of untimed warm-up.")
@click.option("--threads", type=THREADS, default=1, show_default=True,
              help="CPU threads, the same as evolve --bench times with (0: the backend's own default, "
                   "all cores).")
@click.option("--trials", type=TRIALS, default=5, show_default=True,
              help="Timing trials sharing --duration and --iterations: the figure is their median "
                   "with the interquartile range; trials that disagree are re-timed (up to 11).")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="torch backends: the precision a member folder runs in (an ONNX file or engine "
                   "keeps its own).")
@click.option("--half", is_flag=True, hidden=True, help="The old spelling of --precision fp16.")
@click.option("--arch", default=None, help="A member folder's own user-code architecture, allowing "
                                           "jetsynth to import it.")
@click.option("--trust-code", is_flag=True,
              help="Allow importing the user code a member folder's genome.json names.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench(model: Path, backend: str | None, batch: int, duration: float, iterations: int,
          warmup: float, threads: int, trials: int, precision: str, half: bool, arch: str | None,
          trust_code: bool, as_json: bool) -> None:
    """Time MODEL on this machine: an ONNX file, a run's member folder (torch) or a TensorRT
    engine built here (engines are not portable: for a Jetson use `jetsynth deploy`)."""
    half = half or precision == "fp16"
    from jetsynth.ship.bench import ENGINE_SUFFIXES, EngineRunner, TorchRunner, measure, onnx_runner

    planned = warmup + trials * duration
    if planned > DAY:
        _fail(f"--trials {trials} × --duration {duration:g} s would time for at least "
              f"{planned / 3600:,.1f} hours; a measurement may take a day at most: give fewer "
              "--trials or a shorter --duration")
    try:
        if model.is_dir():
            from jetsynth.core.genome import genome_header, load_genome
            from jetsynth.run.rundir import MEMBER_FILE, verify_genome
            from jetsynth.ship.export import compact_genome

            backend = backend or "torch-cpu"
            if not backend.startswith("torch"):
                raise JetsynthError(f"{model} is a member folder: time it with --backend torch-cpu or "
                                    "torch-cuda, or export it to ONNX first")
            factory = None
            if arch is not None or trust_code:
                from jetsynth.nn.models import stored_factories

                recorded = genome_header(model)["arch"]
                factory = stored_factories(recorded, arch, trust_code, str(model))[recorded]
            if (model / MEMBER_FILE).exists():  # a run's member folder: its genome is checked
                verify_genome(model, MemberRecord.read(model / MEMBER_FILE), genome_header(model))
            genome = load_genome(model, factory=factory)
            runner = TorchRunner(compact_genome(genome).model, genome.input_shape, backend, half,
                                 threads)
        else:
            if model.suffix in ENGINE_SUFFIXES:
                if backend not in (None, "trt"):
                    raise JetsynthError(f"{model} is a TensorRT engine: time it with --backend trt")
                runner = EngineRunner(model, batch)
            else:
                runner = onnx_runner(model, backend or "ort-cpu", threads)
        from jetsynth.nn.gpu_lock import backend_turn

        with runner, backend_turn(backend or ("trt" if model.suffix in ENGINE_SUFFIXES else "ort-cpu")):
            result = _run_model(lambda: measure(runner, batch, warmup, duration, iterations,
                                                trials=trials), model)
    except JetsynthError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps({"model": str(model), **result.as_dict()}, indent=2))
        return
    lat = result.latency_ms
    low, high = result.fps_iqr
    retimed = f", {result.retimed} re-timed as the first disagreed" if result.retimed else ""
    click.echo(f"{model} on {result.backend}, batch {result.batch}: {result.fps:,.1f} images/s "
               f"(median of {len(result.fps_trials)} trials{retimed}; interquartile range "
               f"{low:,.1f}–{high:,.1f}; {result.queries} queries)")
    click.echo(f"  measured with {result.produced_by}")
    click.echo(f"  latency per query (ms): mean {lat['mean']:.3f}, p50 {lat['p50']:.3f}, "
               f"p90 {lat['p90']:.3f}, p99 {lat['p99']:.3f}")


def _run_model(timing, model: Path):
    """Run `timing()`, which executes the user's model: a model that fails when run (a shape it
    cannot take, an operator the backend lacks) is bad input, said in one line, not a bug."""
    try:
        return timing()
    except (JetsynthError, KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # onnxruntime's and torch's errors share no base class
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise JetsynthError(f"{model} fails when run ({first[:300]}); check that it was exported "
                            "for this input, or re-export it") from None


cli.add_command(devices)
cli.add_command(deploy)
cli.add_command(build)
cli.add_command(calibrate)
cli.add_command(grow)


def main() -> None:
    """Console entry point: usage errors (an unknown option, a nonsense value) also end with one
    line and exit status 2 (see OneLineGroup)."""
    cli.main()
