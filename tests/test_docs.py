"""The documentation site names everything there is to run: each `jetsynth` command and each
benchmark script under tools/, so nothing a user can run is reachable only by reading code."""

import re
from pathlib import Path

import click
import pytest

from jetsynth.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BENCHMARKS_PAGE = DOCS / "benchmarks.md"
SCRIPTS = sorted(p.name for p in (ROOT / "tools").glob("*.py") if p.name != "common.py")


def site_text() -> str:
    """The pages mkdocs builds: docs/*.md, not the drafts in docs/_incoming/."""
    return "\n".join(page.read_text() for page in sorted(DOCS.glob("*.md")))


def command_paths(group: click.Group, prefix: str = "jetsynth") -> list[str]:
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append(f"{prefix} {name}")
        if isinstance(command, click.Group):
            paths += command_paths(command, f"{prefix} {name}")
    return paths


def test_there_are_scripts_and_commands_to_check():
    assert "bench_seed001_mnist.py" in SCRIPTS and "common.py" not in SCRIPTS
    assert {"jetsynth evolve", "jetsynth devices", "jetsynth devices add"} <= set(command_paths(cli))


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_script_is_on_the_benchmarks_page(script):
    assert f"tools/{script}" in BENCHMARKS_PAGE.read_text(), \
        f"tools/{script} is not named on docs/benchmarks.md: add it with its command and figures"


@pytest.mark.parametrize("command", command_paths(cli))
def test_every_command_appears_in_the_docs(command):
    assert re.search(rf"{re.escape(command)}\b", site_text()), \
        f"`{command}` appears on no page of docs/: show it in the page about its subject"
