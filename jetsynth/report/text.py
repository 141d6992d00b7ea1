"""Text read from run files is data: a layer name or member id from a received run directory is
shown as the characters it holds, never as a line break, a table cell boundary, console markup
or a formula. One function per place text is written into."""

from __future__ import annotations


def printable(text: object) -> str:
    """`text` with every control or separator character (newline, tab, escape, U+2028...)
    written as its Python escape (`\\n`, `\\x1b`, `\\u2028`), so one name stays one line."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(text))


def markdown_cell(text: object) -> str:
    """`text` as one Markdown table cell: printable, its `|` escaped (a cell boundary
    otherwise), `<` and `>` as entities (HTML otherwise)."""
    return (printable(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;"))


def plot_text(text: object) -> str:
    """`text` for a matplotlib label: printable, its `$` escaped (a pair of them starts
    mathtext, whose parse errors fail the whole figure)."""
    return printable(text).replace("$", "\\$")


def console_text(text: object) -> str:
    """`text` for rich's console: printable, its markup (`[bold]`, `[link=...]`) escaped."""
    from rich.markup import escape

    return escape(printable(text))
