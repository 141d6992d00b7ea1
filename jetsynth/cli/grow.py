"""`jetsynth grow`: seed 003's neuroevolution with shared parameters (see growrun)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from jetsynth.cli.common import fail
from jetsynth.cli.config_file import config_option
from jetsynth.cli.types import (
    COUNT,
    FRACTION,
    IMAGE_SIZE,
    LEARNING_RATE,
    MEMBERS,
    SEED,
    STEPS,
    TRAIN_BATCH,
    Number,
)
from jetsynth.run import bounds


@click.command()
@click.option("--data", default="digits", show_default=True,
              help="digits, mnist:DIR, fashion-mnist:DIR, cifar10:DIR, stl10:DIR or folder:DIR.")
@click.option("--subset", type=Number.within(bounds.SUBSET), default=1.0, show_default=True,
              help="Fraction of the training split to use.")
@click.option("--val-split", type=Number(float, 0, 1, low_open=True, high_open=True), default=0.1,
              show_default=True,
              help="Fraction of the training split held out to select on.")
@click.option("--input-size", type=IMAGE_SIZE, default=None, help="Resize images to this side.")
@click.option("--arch", default="small-cnn", show_default=True,
              help="The initial network h_i: a built-in, module:function or file.py:function.")
@click.option("--iterations", type=COUNT, default=10, show_default=True,
              help="Select-mutate-train iterations (Algorithm 1's loop).")
@click.option("--keep-best", type=MEMBERS, default=3, show_default=True, help="K: members selected.")
@click.option("--population", type=MEMBERS, default=10, show_default=True,
              help="M: members after mutation.")
@click.option("--initial-steps", type=STEPS, default=1000, show_default=True,
              help="N_i: updates that train h_i alone first.")
@click.option("--steps", type=STEPS, default=500, show_default=True,
              help="N_j: single updates per iteration, each on a member drawn with replacement.")
@click.option("--batch-size", type=TRAIN_BATCH, default=64, show_default=True)
@click.option("--lr", type=LEARNING_RATE, default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--coevolve", is_flag=True,
              help="Select with re-weighted validation examples (those already classified by a "
                   "selected member weigh --gamma times less).")
@click.option("--gamma", type=FRACTION, default=0.5, show_default=True,
              help="--coevolve: weight factor per selected member that classifies an example.")
@click.option("--ensemble", is_flag=True,
              help="Stack the final K members into one network (RUN/ensemble.onnx).")
@click.option("--ensemble-epochs", type=COUNT, default=50, show_default=True,
              help="--ensemble: full-batch steps of the combiner on the training split.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True,
              help="Where the population trains and is evaluated: auto (CUDA when there is a GPU, "
                   "else the CPU) | cpu | cuda (the first GPU: members share their tensors) | "
                   "cuda:N.")
@click.option("--amp", default=None,
              help="Mixed precision while training: bf16 | fp16 (with a gradient scaler) | off "
                   "[default: bf16 on a GPU (fp16 where it lacks bf16), off on the CPU].")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/grow"),
              show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def grow(run_dir: Path, resume: bool, as_json: bool, **options) -> None:
    """Grow networks by R2R transforms with shared parameters (seed 003, Algorithm 1)."""
    from jetsynth.errors import JetsynthError
    from jetsynth.run.grow import GrowConfig
    from jetsynth.run.grow import grow as run_grow

    try:
        summary = run_grow(GrowConfig(**options), run_dir, resume,
                           notice=(lambda _text: None) if as_json else click.echo)
    except JetsynthError as exc:
        fail(exc)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for rank, member in enumerate(summary["final"], start=1):
        click.echo(f"{rank}. {member['id']}: validation {member['val_accuracy']:.4f}, "
                   f"test {member['accuracy']:.4f}  {member['arch']}")
    if "ensemble" in summary:
        e = summary["ensemble"]
        click.echo(f"ensemble of {len(e['members'])}: test {e['accuracy']:.4f} (plain average "
                   f"{e['average_accuracy']:.4f}) → {e['onnx']}")


grow.params.insert(0, config_option())
