"""`--config FILE.toml`: the same settings as the flags, checked by the same types, overridden by
the flags given beside it; `--help` shows the options in sections."""

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from jetsynth.cli.config_file import read_settings
from jetsynth.cli.main import cli
from jetsynth.run.options import EVOLVE_OPTIONS, SECTIONS

NAMES = ["lr", "max_drop", "data", "bench"]
SECTIONED = {"training": ["lr"], "evolution": ["max_drop"], "data": ["data"]}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_keys_are_option_or_setting_names_at_top_level_or_in_their_section(tmp_path):
    path = _write(tmp_path, 'max-drop = 0.02\nbench = ["ort", "ort-cuda"]\n[training]\nlr = 0.5\n'
                            '[data]\ndata = "digits"\n')
    assert read_settings(path, NAMES, SECTIONED) == {
        "max_drop": 0.02, "bench": ["ort", "ort-cuda"], "lr": 0.5, "data": "digits"}


@pytest.mark.parametrize(("text", "message"), [
    ("lrr = 1\n", "'lrr' is not a setting (did you mean lr?)"),
    ("[training]\nmax_drop = 0.1\n", "belongs under [evolution]"),
    ("[optimiser]\nlr = 1\n", "[optimiser] is not a section"),
    ("lr = 1\nLR = 2\n", "set twice"),
    ("lr = \n", "is not valid TOML"),
    ("lr = { value = 1 }\n", "must be a value, not a table"),
])
def test_a_bad_file_names_the_key_and_what_to_do(tmp_path, text, message):
    with pytest.raises(click.BadParameter, match=re.escape(message)):
        read_settings(_write(tmp_path, text), NAMES, SECTIONED)


def test_a_folder_is_not_a_settings_file(tmp_path):
    with pytest.raises(click.BadParameter, match="is not a file"):
        read_settings(tmp_path, NAMES, SECTIONED)


def test_every_evolve_option_is_in_exactly_one_section():
    listed = [name for _section, names in SECTIONS for name in names]
    assert len(listed) == len(set(listed)), "an option in two sections"
    assert set(listed) == {o.field for o in EVOLVE_OPTIONS}


def test_help_shows_the_sections():
    output = CliRunner().invoke(cli, ["evolve", "--help"], terminal_width=120).output
    for section in [name for name, _ in SECTIONS] + ["Run"]:
        assert f"─ {section} ─" in output, section


FLAGS = ["--generations", "1", "--subset", "0.2", "--ancestor-epochs", "1", "--lr", "0.002",
         "--cluster", "filter"]
FILE = 'generations = 1\ncluster = "filter"\n[data]\nsubset = 0.2\n[model]\nancestor-epochs = 1\n' \
       '[training]\nlr = 0.002\n'


def _config(run_dir: Path) -> dict:
    return json.loads((run_dir / "config.json").read_text())["config"]


def test_a_config_file_runs_as_the_same_flags(tmp_path):
    runner = CliRunner()
    by_flags = runner.invoke(cli, ["evolve", *FLAGS, "--run-dir", str(tmp_path / "flags")])
    assert by_flags.exit_code == 0, by_flags.output
    path = _write(tmp_path, FILE)
    by_file = runner.invoke(cli, ["evolve", "--config", str(path), "--run-dir", str(tmp_path / "file")])
    assert by_file.exit_code == 0, by_file.output
    assert _config(tmp_path / "file") == _config(tmp_path / "flags")


def test_flags_override_the_file_and_its_values_are_checked_as_flags_are(tmp_path):
    path = _write(tmp_path, FILE)
    runner = CliRunner()
    bad = runner.invoke(cli, ["evolve", "--config", str(path), "--lr", "-1"])
    assert bad.exit_code == 2 and "--lr must be a finite number" in bad.output
    bad_file = _write(tmp_path, "lr = -2\n")
    result = runner.invoke(cli, ["evolve", "--config", str(bad_file)])
    assert result.exit_code == 2 and "got -2" in result.output
    assert not (tmp_path / "runs").exists()


def test_grow_reads_a_flat_settings_file(tmp_path):
    runner = CliRunner()
    unknown = runner.invoke(cli, ["grow", "--config", str(_write(tmp_path, "keep_best = 2\nnope = 1\n"))])
    assert unknown.exit_code == 2 and "'nope' is not a setting" in unknown.output
    typed = runner.invoke(cli, ["grow", "--config", str(_write(tmp_path, 'iterations = "many"\n'))])
    assert typed.exit_code == 2 and "iterations" in typed.output


GROW_FLAGS = ["--data", "digits", "--subset", "0.2", "--iterations", "1", "--population", "2",
              "--keep-best", "1", "--initial-steps", "5", "--steps", "5", "--input-size", "8"]
GROW_FILE = 'data = "digits"\nsubset = 0.2\niterations = 1\npopulation = 2\nkeep-best = 1\n' \
            'initial_steps = 5\nsteps = 5\ninput-size = 8\nlr = 0.5\n'


def test_a_grow_config_file_runs_as_the_same_flags_which_override_it(tmp_path):
    runner = CliRunner()
    by_flags = runner.invoke(cli, ["grow", *GROW_FLAGS, "--lr", "0.002",
                                   "--run-dir", str(tmp_path / "flags")])
    assert by_flags.exit_code == 0, by_flags.output
    path = _write(tmp_path, GROW_FILE)
    by_file = runner.invoke(cli, ["grow", "--config", str(path), "--lr", "0.002",
                                  "--run-dir", str(tmp_path / "file")])
    assert by_file.exit_code == 0, by_file.output

    def recorded(run_dir: Path) -> tuple[dict, dict]:
        grown = json.loads((run_dir / "grow.json").read_text())["config"]
        return grown, _config(run_dir)

    assert recorded(tmp_path / "file") == recorded(tmp_path / "flags")
    assert recorded(tmp_path / "file")[0]["lr"] == 0.002
