"""Names read from a run's records are data: a newline, a `|`, console markup or a `$` in a layer
name or member id is shown as those characters, never as a new line of a file, a table cell, a
style or a formula."""

import json
import shutil

from click.testing import CliRunner

from jetsynth.cli.main import cli
from jetsynth.core.records import LayerRecord
from jetsynth.report.plots import layer_figure
from jetsynth.report.plotting import layer_labels
from jetsynth.report.text import console_text, markdown_cell, plot_text, printable
from jetsynth.run.rundir import load_records

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake sender@evil"
HOSTILE = f"conv1\n{KEY}\r\n| $x^2$ [bold]<b>\x1b[31m\u2028"


def test_printable_writes_control_characters_as_escapes():
    assert printable("a\nb\tc\x1b[0m\u2028") == "a\\nb\\tc\\x1b[0m\\u2028"
    assert printable("layer1.0.conv2 é") == "layer1.0.conv2 é"


def test_each_place_escapes_its_own_syntax():
    assert markdown_cell("a|b\n<c>") == "a\\|b\\n&lt;c&gt;"
    assert plot_text("$x$\n") == "\\$x\\$\\n"
    assert console_text("[bold]x\n") == "\\[bold]x\\n"
    layer = LayerRecord(name="a\nb", synapses=1, clusters=1, kind="conv")
    assert layer_labels([layer]) == ["a\\nb"]


def _hostile_run(benched_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(benched_run, run)
    for path in run.glob("members/*/member.json"):
        record = json.loads(path.read_text())
        record["layers"][0]["name"] = HOSTILE
        path.write_text(json.dumps(record))
    return run


def test_a_hostile_layer_name_stays_one_cell_of_one_line(benched_run, tmp_path):
    run = _hostile_run(benched_run, tmp_path)
    result = CliRunner().invoke(cli, ["report", str(run)])
    assert result.exit_code == 0, result.output
    tables = (run / "report" / "tables.md").read_text()
    assert not any(line.startswith("ssh-") for line in tables.splitlines())
    assert "\x1b" not in tables and "\r" not in tables and "\u2028" not in tables
    header = next(line for line in tables.splitlines() if line.startswith("| Gen. | Test acc."))
    columns = len(next(line for line in tables.splitlines()
                       if line.startswith("| Gen. | Test acc.")).split(" | "))
    row = tables.splitlines()[tables.splitlines().index(header) + 2]
    assert len(row.split(" | ")) == columns  # the name's '|' did not add a cell
    assert "conv1\\n" + KEY + "\\r\\n\\| $x^2$ [bold]&lt;b&gt;\\x1b[31m\\u2028" in header
    assert not any(line.startswith("ssh-") for line in result.output.splitlines())
    assert "\x1b[31m" not in result.output


def test_a_hostile_layer_name_is_literal_text_in_the_plot(benched_run, tmp_path):
    run = _hostile_run(benched_run, tmp_path)
    config, records = load_records(run)
    fig = layer_figure(run, records, config)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "\n" not in labels[0] and "\\$x^2\\$" in labels[0]
    fig.canvas.draw()  # an unescaped '$...$' pair would be parsed as a formula here
