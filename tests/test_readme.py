import re
from pathlib import Path

from jetsynth.cli.main import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_options_table_is_evolve_help():
    """Every `jetsynth evolve` option has a row in the README's options table, and every option
    the table names exists."""
    text = README.read_text()
    start = text.index("### Options")
    table = text[start:text.index("\n## ", start)]
    documented = set(re.findall(r"`(--[a-z0-9-]+)", table))
    options = {o for p in cli.commands["evolve"].params for o in getattr(p, "opts", ())
               if o.startswith("--") and o != "--help"}
    assert options - documented == set(), "options missing from the README table"
    assert documented - options == set(), "README rows for options that do not exist"
