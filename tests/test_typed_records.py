"""Member records cross modules typed: `MemberRecord` (core/records.py) is what run, report, cli,
api and tools pass around, and only the module that reads and writes member.json looks at its
keys. Two cheap scans of the source enforce it (jetsynth/ and tools/; tests build records as
they like):

- a parameter named as the code base names member records (`record`, `records`, `ancestor`,
  `previous`) is never annotated as a dict;
- a member record is never read by string key: no `record["fps"]` / `record.get("fps")` on a
  name that holds one (`record`, `ancestor`, `records[i]`, `previous[i]`, or the loop variable of
  a `for`/comprehension over `records`, `previous`, `members` or `candidates`).

OWNERS are the modules allowed to do both: the one that converts member.json to and from the
typed record. `storage.append_jsonl` writes any JSON line (its `record` is not a member's)."""

import ast
from pathlib import Path

import jetsynth

ROOT = Path(jetsynth.__file__).parent.parent
OWNERS = {"jetsynth/core/records.py"}
RECORD_PARAMETERS = {"record", "records", "ancestor", "previous"}
NOT_MEMBER_RECORDS = {("jetsynth/storage.py", "append_jsonl"), *(
    ("tools/bench_vs_pruning.py", name)
    for name in ("best_within", "dominance", "fps_dominance", "plot"))}
"""(file, function) whose parameter of a record's name holds something else: a JSON line, the
measured point of the pruning comparison's ancestor."""
RECORD_NAMES = {"record"}
RECORD_LISTS = {"records", "previous", "members", "candidates"}


def sources() -> list[Path]:
    files = sorted((ROOT / "jetsynth").rglob("*.py")) + sorted((ROOT / "tools").glob("*.py"))
    return [p for p in files if str(p.relative_to(ROOT)) not in OWNERS]


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def _functions(path: Path, skipped: set[tuple[str, str]]):
    """(file, function node) of every function in `path` but the (file, function) `skipped`."""
    relative = _name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                relative, node.name) not in skipped:
            yield relative, node


def _dict_annotated(path: Path, names: set[str], skipped: set[tuple[str, str]]) -> list[str]:
    """Parameters called one of `names` and annotated as a dict."""
    found = []
    for relative, node in _functions(path, skipped):
        for argument in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:
            annotation = ast.unparse(argument.annotation) if argument.annotation else ""
            if argument.arg in names and "dict" in annotation:
                found.append(f"{relative}:{node.lineno} {node.name}({argument.arg}: {annotation})")
    return found


def dict_annotated_record_parameters(path: Path) -> list[str]:
    return _dict_annotated(path, RECORD_PARAMETERS, NOT_MEMBER_RECORDS)


def _iterates_records(iterable: ast.expr) -> bool:
    """Whether `iterable` is a list of records: `records`, a slice of it, or it sorted."""
    if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) and (
            iterable.func.id in ("sorted", "reversed") and iterable.args):
        iterable = iterable.args[0]
    if isinstance(iterable, ast.Subscript):
        iterable = iterable.value
    return isinstance(iterable, ast.Name) and iterable.id in RECORD_LISTS


def _scopes(tree: ast.AST):
    """(node, names holding a member record inside it): each function with its parameters
    annotated MemberRecord and those of a record's name, each for loop and comprehension over
    a list of records with its loop variables."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            names = {a.arg for a in arguments if a.arg in RECORD_NAMES or (
                a.annotation is not None and "MemberRecord" in ast.unparse(a.annotation))}
            yield node, names | RECORD_NAMES
        elif isinstance(node, ast.For) and _iterates_records(node.iter):
            yield node, {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            names = {n.id for g in node.generators if _iterates_records(g.iter)
                     for n in ast.walk(g.target) if isinstance(n, ast.Name)}
            if names:
                yield node, names


def _holds_record(node: ast.expr, names: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in names
    return (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
            and node.value.id in {"records", "previous"})


def string_key_reads(path: Path) -> list[str]:
    found = set()
    for scope, names in _scopes(ast.parse(path.read_text())):
        for node in ast.walk(scope):
            key = base = None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                key, base = node.slice.value, node.value
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "get" and node.args
                  and isinstance(node.args[0], ast.Constant)):
                key, base = node.args[0].value, node.func.value
            if isinstance(key, str) and _holds_record(base, names):
                found.add((node.lineno, node.col_offset, f"{_name(path)}:{node.lineno} {ast.unparse(node)}"))
    return [line for *_, line in sorted(found)]


def test_no_member_record_parameter_is_a_dict():
    found = [line for path in sources() for line in dict_annotated_record_parameters(path)]
    assert found == [], "annotate member records as MemberRecord:\n" + "\n".join(found)


def test_no_member_record_is_read_by_string_key():
    found = [line for path in sources() for line in string_key_reads(path)]
    assert found == [], "read member records by attribute:\n" + "\n".join(found)


def test_the_scans_catch_what_they_are_for(tmp_path):
    """Each scan flags the pattern it forbids (a scan that finds nothing proves nothing)."""
    path = tmp_path / "probe.py"
    path.write_text("def best(records: list[dict], ancestor: MemberRecord, previous: dict):\n"
                    "    fast = [r['fps'] for r in records]\n"
                    "    return records[0]['id'], ancestor.get('accuracy'), fast\n")
    assert len(dict_annotated_record_parameters(path)) == 2
    assert [line.split(" ", 1)[1] for line in string_key_reads(path)] == [
        "r['fps']", "records[0]['id']", "ancestor.get('accuracy')"]
    path.write_text("def load_records(run_dir) -> tuple[dict, list]:\n    pass\n"
                    "def plot(rows: list[dict], config: dict | None = None, timing: Timing = None):\n"
                    "    pass\n")
    assert [line.split(" ", 1)[1] for line in loose_crossings(path)] == [
        "load_records() -> tuple[dict, list]", "plot(rows: list[dict])", "plot(config: dict | None)"]


CROSSING_PARAMETERS = {"config", "timing", "rows", "frontier", "pressure"}
"""Parameters that carry the run's configuration, a timing or report rows between modules."""
CROSSING_RETURNS = {"load_records", "time_here", "time_on_device", "timed", "time_on", "cached",
                    "frontier_rows", "pressure_rows", "overlap_by_generation", "deploy",
                    "deploy_many"}
"""Functions whose result crosses into other modules: the configuration with the records, a
timing, report rows, a deployment's result."""
NOT_CROSSING = {("tools/bench_latency_model.py", "errors"), ("tools/bench_seed000_grid.py",
                                                               "with_conv_kernels")}
"""(file, function) whose parameter of such a name holds the tool's own rows, not the report's."""


def loose_crossings(path: Path) -> list[str]:
    """Parameters of a crossing's name annotated as a dict, and crossing functions that return
    one (the configuration, timings, report rows and deploy results travel typed: EvolveConfig,
    Timing, FrontierRow, PressureRow, DeployResult)."""
    returns = [f"{relative}:{node.lineno} {node.name}() -> {ast.unparse(node.returns)}"
               for relative, node in _functions(path, NOT_CROSSING)
               if node.name in CROSSING_RETURNS and node.returns is not None
               and "dict" in ast.unparse(node.returns)]
    return returns + _dict_annotated(path, CROSSING_PARAMETERS, NOT_CROSSING)


def test_configuration_timings_and_report_rows_cross_typed():
    found = [line for path in sources() for line in loose_crossings(path)]
    assert found == [], ("pass EvolveConfig, Timing, FrontierRow, PressureRow or DeployResult:\n"
                         + "\n".join(found))

