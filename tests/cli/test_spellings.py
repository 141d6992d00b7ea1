"""One spelling for precision across commands: `--precision fp32|fp16` for evolve, export, bench,
build and calibrate; the older `build --fp16` and `bench --half` still parse, hidden from --help."""

import pytest
from click.testing import CliRunner

from jetsynth.cli.main import cli


@pytest.mark.parametrize("command", ["evolve", "export", "bench", "build", "calibrate"])
def test_every_command_takes_precision(command):
    names = {o for p in cli.commands[command].params for o in getattr(p, "opts", ())}
    assert "--precision" in names


@pytest.mark.parametrize(("command", "old"), [("build", "--fp16"), ("bench", "--half")])
def test_the_old_spellings_parse_but_are_not_shown(command, old, tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"")
    args = [str(model), "-o", str(tmp_path / "x.engine"), old] if command == "build" else [str(model), old]
    context = cli.commands[command].make_context(command, args)
    assert context.params[old.lstrip("-")] is True
    assert old not in CliRunner().invoke(cli, [command, "--help"]).output
