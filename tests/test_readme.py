"""The README and the options page agree with the commands: every `jetsynth evolve` option has a
row on docs/options.md, and every link the README makes into docs/ leads to a file there."""

import re
from pathlib import Path

from jetsynth.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
OPTIONS_PAGE = ROOT / "docs" / "options.md"


def options_table() -> str:
    text = OPTIONS_PAGE.read_text()
    start = text.index("\n## Options\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def test_the_options_page_table_is_evolve_help():
    """Every `jetsynth evolve` option has a row in the options page's table, and every option
    the table names exists."""
    # a cell whose code holds a pipe is written <code>...&#124;...</code>, which renders the same
    # on GitHub and in mkdocs
    documented = set(re.findall(r"(?:`|<code>)(--[a-z0-9-]+)", options_table()))
    options = {o for p in cli.commands["evolve"].params for o in getattr(p, "opts", ())
               if o.startswith("--") and o != "--help"}
    assert options - documented == set(), "options missing from the table of docs/options.md"
    assert documented - options == set(), "docs/options.md rows for options that do not exist"


def test_the_readme_links_into_docs_resolve():
    """The README's relative links (to docs pages, with or without an anchor) name files that
    exist, so they work on GitHub as well as in a clone; an anchor names a heading of the page."""
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert any(link.startswith("docs/") for link in local)
    for link in local:
        path, _, anchor = link.partition("#")
        assert (ROOT / path).is_file(), f"README links to {path}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), re.MULTILINE)
            assert anchor in {slug(h) for h in headings}, f"README links to a missing heading: {link}"


def slug(heading: str) -> str:
    """A heading's anchor as Python-Markdown's toc extension (mkdocs' default) makes it."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)
