"""The package layout is the data flow: every import inside jetsynth points down the layers below
(or stays in its own package), and no modules import each other in a circle, including imports
inside functions (a circle held together by a function-local import is still a circle)."""

import ast
from pathlib import Path

import jetsynth

PACKAGE = Path(jetsynth.__file__).parent

# Lowest first. A module may import its own layer's package and any layer before it.
LAYERS = (
    ("errors", "storage", "version", "agent"),
    ("data",),
    ("nn",),
    ("core",),
    ("ship",),
    ("calibration",),
    ("devices",),
    ("run",),
    ("report",),
    ("cli",),
    ("api", "__init__", "__main__"),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The jetsynth modules `path` imports, anywhere in it (TYPE_CHECKING blocks included)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_every_module_has_a_layer():
    assert {layer(name) for name in modules()} - set(RANK) == set()


def test_imports_point_down():
    upward = [f"{name} imports {target}" for name, targets in graph().items() for target in targets
              if RANK[layer(target)] > RANK[layer(name)]
              and target != "jetsynth" and layer(name) not in ("__init__", "__main__")]
    assert upward == []


def test_no_module_imports_the_package_facade():
    """`jetsynth/__init__` re-exports the public names for users; inside the package that would
    be an import up to the top."""
    assert [n for n, targets in graph().items() if "jetsynth" in targets and layer(n) != "__main__"] == []


def test_no_import_circles():
    edges = graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if target.startswith(node + ".") or node.startswith(target + "."):
                continue
            if state.get(target) == 1:
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert circles == []


# Inside each package, lowest first: a module may import the modules before it, never one after.
MODULE_ORDER = {
    "agent": ("errors", "lifetime", "timing", "buffers", "runners", "facts", "power", "bundle",
              "ort", "tensorrt", "trtexec", "cli"),
    "data": ("dataset", "stream", "imagefolder", "load", "items"),
    "nn": ("finite", "gpu_lock", "norm_stats", "growth", "structure", "layout", "device", "checkpoint",
           "weights", "population", "models", "compact"),
    "core": ("records", "genome", "trials", "environment", "pressure_costs", "channel_groups",
             "encoding", "similarity", "screening", "metrics", "grow_genome", "repair", "mating",
             "selection", "synthesis", "frontier", "stopping"),
    "ship": ("state_dict", "onnxfile", "export", "trt", "ensemble", "bench"),
    "calibration": ("features", "sweep", "model", "costs"),
    "devices": ("profiles", "inventory", "pool", "ssh", "deploy_result", "deploy"),
    "run": ("bounds", "settings", "policies", "options", "train", "timing", "measurement", "calibrate",
            "config", "rundir", "export_run", "grow", "member", "ray_executor", "executors",
            "recording", "evolve"),
    "report": ("text", "plotting", "run_report", "calibration_plot", "plots"),
    "cli": ("common", "types", "progress", "outputs", "config_file", "evolve_options", "calibrate",
            "deploy", "grow", "main"),
}


def _package_modules() -> dict[str, list[str]]:
    """Package → its modules (jetsynth.run.config → 'run': ['config', ...])."""
    found: dict[str, list[str]] = {}
    for name in modules():
        parts = name.split(".")
        if len(parts) == 3:
            found.setdefault(parts[1], []).append(parts[2])
    return found


def test_every_module_has_a_place_in_its_package():
    missing = [f"{package}.{module}" for package, names in _package_modules().items()
               for module in names if module not in MODULE_ORDER.get(package, ())]
    assert missing == [], "add these to MODULE_ORDER, after the modules they import"


def test_modules_import_only_siblings_below_them():
    upward = []
    for name, targets in graph().items():
        parts = name.split(".")
        if len(parts) != 3 or parts[1] not in MODULE_ORDER:
            continue
        order = MODULE_ORDER[parts[1]]
        for target in targets:
            sibling = target.split(".")
            if len(sibling) == 3 and sibling[1] == parts[1] and sibling[2] in order and (
                    order.index(sibling[2]) > order.index(parts[2])):
                upward.append(f"{name} imports {target}, declared above it")
    assert upward == []
