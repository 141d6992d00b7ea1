"""`jetsynth calibrate`: fit a device's latency model from a sweep of timed networks."""

from __future__ import annotations

import json
from pathlib import Path

import click

from jetsynth.cli.common import fail
from jetsynth.cli.outputs import OUTPUT
from jetsynth.cli.types import BATCH, SECONDS, SEED, Number
from jetsynth.run.bounds import DAY

DEFAULT_PRECISION = "fp32"
"""evolve's default --precision (fp32), so that `calibrate DEVICE` fits the model `evolve --bench
DEVICE` looks for."""


@click.command()
@click.argument("device")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default=DEFAULT_PRECISION,
              show_default=True,
              help="Precision the networks are exported at: evolve's --precision must match (the "
                   "same default).")
@click.option("--batch", type=BATCH, default=1, show_default=True,
              help="Images per query (evolve's --bench-batch must match).")
@click.option("--seconds", type=SECONDS, default=0.5, show_default=True,
              help="Minimum timed seconds per network.")
@click.option("--variants", type=Number(int, 1, 10_000), default=24, show_default=True,
              help="Networks per architecture in the sweep (the first is the full ancestor).")
@click.option("--arch", "archs", multiple=True, default=("lenet5", "alexnet-cifar"), show_default=True,
              help="Architectures whose compacted variants are timed (repeat the option).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Which random widths the sweep draws.")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("calibration"), show_default=True,
              help="Where the model, its measurements, networks and plot are kept.")
@click.option("-o", "--output", type=OUTPUT, default=None,
              help="The model file [default: DIR/DEVICE.json].")
@click.option("--json", "as_json", is_flag=True, help="Print the model as one JSON object.")
def calibrate(device: str, precision: str, batch: int, seconds: float, variants: int,
              archs: tuple[str, ...], seed: int, folder: Path, output: Path | None,
              as_json: bool) -> None:
    """Time a sweep of compacted networks on DEVICE and fit its latency model.

    DEVICE is ort (onnxruntime CPU here), ort-cuda, ort-trt, a stored device name or
    user@host[:port]. The model is written to DIR/NAME.json, NAME being the backend's full name
    (ort-cpu.json for ort) or the device's; evolution with --bench DEVICE --measure-every K
    predicts the members it does not time with it."""
    from jetsynth.cli.progress import StepProgress
    from jetsynth.errors import JetsynthError
    from jetsynth.report.calibration_plot import write_calibration_plot
    from jetsynth.run.calibrate import calibrate as run_calibration
    from jetsynth.run.config import resolve_bench

    if device == "none":
        fail("calibrate needs somewhere to time networks: ort, ort-cuda, ort-trt or a device")
    planned = variants * len(archs) * seconds
    if planned > DAY:
        fail(f"--variants {variants} × {len(archs)} architectures × --seconds {seconds:g} would time "
             f"for at least {planned / 3600:,.1f} hours; a calibration may take a day at most: "
             "give fewer --variants or fewer --seconds")
    collected = []
    try:
        target = resolve_bench(device)
        with StepProgress(f"timing networks on {device}") as progress:

            def advance(sample, done, total):
                collected.append(sample)
                progress(done, total)

            model, path = run_calibration(target, precision, batch, seconds, tuple(archs), variants, seed,
                                          folder, output, advance)
        plot = write_calibration_plot(collected, model, path.with_suffix(".png"))
    except JetsynthError as exc:
        fail(exc)
    if as_json:
        click.echo(json.dumps({**model.as_dict(), "path": str(path), "plot": str(plot)}, indent=2))
        return
    failed = sum(1 for s in collected if s.fps is None)
    click.echo(f"timed {model.samples} networks on {device}" + (f" ({failed} failed)" if failed else ""))
    for label, key in (("held-out", "holdout"), ("all samples", "all")):
        if key in model.error:
            error = model.error[key]
            click.echo(f"{label} error: median {100 * error['median']:.1f} %, max {100 * error['max']:.1f} % "
                       f"({error['count']} networks)")
    click.echo(f"latency model: {path}")
    click.echo(f"plot: {plot}")
