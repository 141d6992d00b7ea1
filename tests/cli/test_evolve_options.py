import subprocess
import sys
from pathlib import Path

import click
import pytest

import jetsynth
from jetsynth.cli.evolve_options import evolve_params
from jetsynth.cli.main import cli
from jetsynth.run.config import EvolveConfig
from jetsynth.run.options import EVOLVE_OPTIONS

COMMAND_ONLY = ("config", "run_dir", "resume", "trust_code")


def _parse(*args: str) -> dict:
    return cli.commands["evolve"].make_context("evolve", list(args)).params


def test_the_evolve_command_has_the_specs_options_in_order_and_its_own():
    names = [p.name for p in cli.commands["evolve"].params if p.name != "help"]
    assert [n for n in names if n not in COMMAND_ONLY] == [o.field for o in EVOLVE_OPTIONS]
    assert names.index("run_dir") == names.index("seed") + 1
    assert names.index("trust_code") == names.index("ancestor_weights") + 1
    options = {p.name: p.opts for p in cli.commands["evolve"].params}
    assert all(options[o.field] == [o.option] for o in EVOLVE_OPTIONS)


def test_no_options_given_is_the_default_configuration():
    params = _parse()
    assert (params.pop("run_dir"), params.pop("resume"), params.pop("trust_code")) == (None, False, False)
    params["alphas"] = tuple(params["alphas"]) or None
    params["bench"], *pool = params["bench"]  # as the command does: the first names the pool
    params["bench_pool"] = tuple(pool)
    assert EvolveConfig(**params) == EvolveConfig()


def test_options_parse_into_the_fields_types():
    params = _parse("--alpha", "1", "--alpha", "0.5", "--mean", "0.5,0.4", "--std", "0.2",
                    "--std", "0.3", "--overlap-band", "0.2", "0.7", "--augment", "--cluster", "filter",
                    "--cpus-per-member", "3", "--generations", "4", "--keep", "0.6")
    assert params["alphas"] == (1.0, 0.5)
    assert params["mean"] == (0.5, 0.4) and params["std"] == (0.2, 0.3)
    assert params["overlap_band"] == (0.2, 0.7)
    assert params["augment"] is True and params["cluster"] == "filter"
    assert params["cpus_per_member"] == 3 and params["generations"] == 4 and params["keep"] == 0.6


def test_a_bound_from_the_spec_is_enforced_with_one_line():
    with pytest.raises(click.BadParameter, match=r"--lr must be a finite number in \(0, 10\], got '11'"):
        _parse("--lr", "11")


def test_the_commands_own_options_are_each_placed_once_behind_a_real_field():
    own = [click.Option(["--run-dir"]), click.Option(["--resume"], is_flag=True)]
    with pytest.raises(ValueError, match="no evolve option for nope"):
        evolve_params(own, {"nope": ("run_dir", "resume")})
    with pytest.raises(ValueError, match="place each of the command's own options once"):
        evolve_params(own, {"seed": ("run_dir",)})
    params = evolve_params(own, {"data": ("resume",), "seed": ("run_dir",)})
    names = [p.name for p in params]
    assert names[:3] == ["data", "resume", "subset"] and names[names.index("seed") + 1] == "run_dir"


def test_the_command_line_starts_without_the_run_configuration():
    """`jetsynth --help` must not import torch: the spec is read on the evolve command's first use."""
    code = ("import sys; from click.testing import CliRunner; from jetsynth.cli.main import cli; "
            "CliRunner().invoke(cli, ['--help']); "
            "print('torch' in sys.modules, 'jetsynth.run.config' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          check=True, cwd=Path(jetsynth.__file__).parents[1])
    assert done.stdout.split() == ["False", "False"]
