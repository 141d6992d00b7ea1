"""Joins the agent's modules into the one Python-3.6 file that `jetsynth deploy` ships.

The modules are concatenated in dependency order (`MODULES`), each without its docstring and its
imports; their standard-library imports are gathered, deduplicated and sorted at the top, under
the docstring of cli.py (the program's own). The output depends only on the modules' text, so its
sha256 (what deploy checks on the device) changes only when the agent does. The bundler refuses
what it could not join safely: an import of another module that is not `from .module import
names` at the top level, or one top-level name defined by two modules.

Usage: python -m jetsynth.agent.bundle OUT  (or python3 jetsynth/agent/bundle.py OUT, which
needs no installed jetsynth: the Docker images use it). OUT '-' writes to stdout.
This file runs on Python 3.6 too.
"""

import ast
import os
import sys

MODULES = ("errors", "lifetime", "timing", "facts", "power", "runners", "ort", "buffers",
           "tensorrt", "trtexec", "cli")
"""The shipped modules, each after every module it imports."""
HERE = os.path.dirname(os.path.abspath(__file__))


class BundleError(Exception):
    """The modules cannot be joined as they are; the message says which and why."""


def _top_level_names(node):
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    return []


def _split(name, text):
    """(docstring, stdlib import lines, body lines without docstring and imports) of one module."""
    tree = ast.parse(text, name + ".py")
    lines = text.splitlines()
    starts = [_first_line(node) for node in tree.body] + [len(lines) + 1]
    drop = set()
    imports = []
    for index, node in enumerate(tree.body):
        span = range(starts[index] - 1, starts[index + 1] - 1)
        if index == 0 and isinstance(node, ast.Expr) and ast.get_docstring(tree) is not None:
            drop.update(range(0, starts[1] - 1))  # Python < 3.8 gives a string's last line
        elif isinstance(node, ast.ImportFrom) and node.level:
            if node.level != 1 or node.module not in MODULES[:MODULES.index(name)] or any(
                    alias.asname for alias in node.names):
                raise BundleError(f"{name}.py line {node.lineno}: only `from .module import name` of "
                                  "an earlier module in MODULES can be joined")
            drop.update(span)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                raise BundleError(f"{name}.py line {node.lineno}: no __future__ imports in the agent")
            drop.update(span)
            imports.extend(_import_lines(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level and node not in tree.body:
            raise BundleError(f"{name}.py line {node.lineno}: relative imports belong at the top level")
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                (alias.name or "").split(".")[0] == "jetsynth" for alias in node.names) or (
                isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "jetsynth"):
            raise BundleError(f"{name}.py line {node.lineno}: the agent imports nothing from jetsynth")
    body = [line for number, line in enumerate(lines) if number not in drop]
    docstring = ast.get_docstring(tree, clean=False)
    return docstring, imports, body, tree


def _first_line(node):
    """Where a top-level statement starts, its decorators included."""
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def _import_lines(node):
    if isinstance(node, ast.Import):
        return [f"import {_alias(a)}" for a in node.names]
    return [f"from {node.module} import {_alias(a)}" for a in node.names]


def _alias(alias):
    return alias.name + (" as " + alias.asname if alias.asname else "")


def _strip_blank_edges(lines):
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def bundle(folder=HERE):
    """The text of the shipped agent, joined from the modules in `folder`."""
    imports = set()
    parts = []
    owner = {}
    docstring = None
    for name in MODULES:
        with open(os.path.join(folder, name + ".py"), encoding="utf-8") as handle:
            text = handle.read()
        doc, module_imports, body, tree = _split(name, text)
        for node in tree.body:
            for defined in _top_level_names(node):
                if defined in owner and owner[defined] != name and defined != "__doc__":
                    raise BundleError(f"{defined} is defined in both {owner[defined]}.py and {name}.py")
                owner[defined] = name
        imports.update(module_imports)
        parts.append("# " + "-" * 30 + f" jetsynth/agent/{name}.py\n\n"
                     + "\n".join(_strip_blank_edges(body)) + "\n")
        if name == "cli":
            docstring = doc
    plain = sorted(line for line in imports if line.startswith("import "))
    froms = sorted(line for line in imports if line.startswith("from "))
    head = ['#!/usr/bin/env python3', '"""' + docstring + '"""', "",
            "# Generated by bundle.py of the jetsynth.agent package, joining its modules {};".format(
                ", ".join(MODULES)),
            "# edit those modules, not this file.", ""]
    return "\n".join(head + plain + froms) + "\n\n\n" + "\n\n".join(parts)


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m jetsynth.agent.bundle OUT   (OUT '-': stdout)\n")
        return 2
    text = bundle()
    if args[0] == "-":
        sys.stdout.write(text)
    else:
        with open(args[0], "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
