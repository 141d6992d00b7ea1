"""Seed 001's tables and plots from a run directory, and the machine-readable summary.

Choose on validation, report on test: every "best" member (per generation, `export --best`) and
the accuracy floor use `selection.selection_accuracy` (validation accuracy; test accuracy for
records from before the validation split), and `accuracy` stays the test accuracy.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from .errors import JetsynthError
from .frontier import frontier_rows, pareto_front, source
from .rundir import CONFIG_FILE, RunDirectory
from .selection import selection_accuracy, speed
from .similarity import aligned_presences, average_overlap, overlap_matrix

SUMMARY_FIELDS = (
    "repair",
    "id",
    "generation",
    "member",
    "parents",
    "accuracy",
    "val_accuracy",
    "synapses",
    "clusters",
    "kernels",
    "units",
    "synaptic_efficiency",
    "cluster_efficiency",
    "macs",
    "mac_reduction",
    "fps",
    "fps_predicted",
)


def load_records(run_dir: Path) -> tuple[dict, list[dict]]:
    """The run's configuration and its members' records, ancestor first."""
    run = RunDirectory(Path(run_dir))
    config = run.stored_config()
    if config is None:
        raise JetsynthError(f"{run_dir} is not a jetsynth run directory (no {CONFIG_FILE})")
    records = sorted(run.records(), key=lambda r: (r["generation"], r["member"]))
    if not records:
        raise JetsynthError(f"{run_dir} holds no finished member yet; run or resume the evolution")
    return asdict(config), records


def summary(run_dir: Path) -> dict:
    """The `report --json` object (DESIGN.md §4): the ancestor's figures and every member's."""
    config, records = load_records(run_dir)
    layer_names = [layer["name"] for layer in records[0]["layers"]]

    def entry(record: dict) -> dict:
        out = {key: record.get(key) for key in SUMMARY_FIELDS}
        out["fps_source"] = source(record)
        out["layers"] = [
            {**layer, "cluster_efficiency": eff}
            for layer, eff in zip(record["layers"], record["layer_cluster_efficiency"], strict=False)
        ]
        return out

    return {
        "run_dir": str(run_dir),
        "config": config,
        "layers": layer_names,
        "ancestor": entry(records[0]),
        "members": [entry(r) for r in records],
        "generations": overlap_by_generation(run_dir, records, config["cluster"]),
        "accuracy_floor": run_floor(config, records),
        "frontier": frontier_rows(records, run_floor(config, records), config.get("target_fps")),
        "pressure": pressure_rows(records, run_floor(config, records)),
    }


def pressure_rows(records: list[dict], floor: float) -> list[dict]:
    """Per generation: the keep share its offspring were drawn under (the most any member got:
    a member whose parents allowed no viable draw inherits a structure whole, at 1), its best
    validation accuracy against the floor, and its smallest member at the floor (synaptic
    efficiency and MAC reduction, None when no member kept the floor)."""
    rows = []
    for generation in sorted({r["generation"] for r in records}):
        members = [r for r in records if r["generation"] == generation]
        kept = [r for r in members if selection_accuracy(r) >= floor]
        smallest = min(kept, key=lambda r: (r["macs"], r["synapses"])) if kept else None
        rows.append({
            "generation": generation,
            "keep": min(r.get("environment", {}).get("R", 1.0) for r in members),
            "best_val_accuracy": max(selection_accuracy(r) for r in members),
            "floor": floor,
            "at_floor": len(kept),
            "synaptic_efficiency": smallest["synaptic_efficiency"] if smallest else None,
            "mac_reduction": smallest["mac_reduction"] if smallest else None,
        })
    return rows


def pressure_table(rows: list[dict]) -> list[list[str]]:
    def times(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}×"

    return [[str(r["generation"]), f"{r['keep']:.3f}", f"{r['best_val_accuracy']:.4f}",
             f"{r['floor']:.4f}", str(r["at_floor"]), times(r["synaptic_efficiency"]),
             times(r["mac_reduction"])] for r in rows]


PRESSURE_HEADER = ["Gen.", "Keep", "Best val. acc.", "Floor", "At floor", "Synaptic eff.",
                   "MAC red."]


def write_pressure_plot(run_dir: Path, rows: list[dict]) -> Path:
    """The pressure per generation above the accuracy it left and the size it reached."""
    plt = pyplot()
    generations = [r["generation"] for r in rows]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(6.5, 7.5), sharex=True)
    top.step(generations, [r["keep"] for r in rows], where="mid", marker="o", color="tab:red")
    top.set_ylabel("keep share\n(lower = more pressure)")
    top.set_ylim(0, 1.05)
    middle.plot(generations, [r["best_val_accuracy"] for r in rows], marker="o",
                label="best member (validation)")
    middle.axhline(rows[0]["floor"], color="gray", linestyle="--", label="accuracy floor")
    middle.set_ylabel("validation accuracy")
    middle.legend(fontsize=8)
    for key, label in (("synaptic_efficiency", "fewer synapses"), ("mac_reduction", "fewer MACs")):
        points = [(r["generation"], r[key]) for r in rows if r[key] is not None]
        bottom.plot([g for g, _ in points], [v for _, v in points], marker="o", label=label)
    bottom.set_yscale("log")
    bottom.set_ylabel("smallest member at the floor\n(×, ancestor / member)")
    bottom.set_xlabel("generation")
    bottom.legend(fontsize=8)
    for ax in (top, middle, bottom):
        ax.grid(True, alpha=0.3)
    fig.suptitle("Environmental pressure per generation")
    fig.tight_layout()
    out_dir = Path(run_dir) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "pressure.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_floor(config: dict, records: list[dict]) -> float:
    """The run's accuracy floor (on validation): --accuracy-floor, else one point under the
    ancestor's validation accuracy."""
    from .config import EvolveConfig

    return EvolveConfig.floor(EvolveConfig(**config), selection_accuracy(records[0]))


def _best_per_generation(records: list[dict]) -> list[dict]:
    best: dict[int, dict] = {}
    for record in records:
        kept = best.get(record["generation"])
        if kept is None or selection_accuracy(record) > selection_accuracy(kept):
            best[record["generation"]] = record
    return [best[g] for g in sorted(best)]


def efficiency_table(records: list[dict]) -> list[list[str]]:
    """Seed 001 Table 1: generation, member, architectural (synaptic) efficiency, cluster
    efficiency, MAC reduction, test accuracy (and validation accuracy when the run has one)."""
    measured = has_fps(records)
    predicted = has_predictions(records)
    validated = has_validation(records)
    return [
        [
            str(r["generation"]),
            str(r["member"]),
            f"{r['synaptic_efficiency']:.2f}X",
            f"{r['cluster_efficiency']:.2f}X",
            f"{r['mac_reduction']:.2f}X",
            f"{r['accuracy']:.4f}",
        ]
        + ([_accuracy(r.get("val_accuracy"))] if validated else [])
        + ([_fps(r.get("fps"))] if measured else [])
        + ([_fps(r.get("fps_predicted"))] if predicted else [])
        for r in records
    ]


def _fps(value: float | None) -> str:
    return f"{value:,.0f}" if value else "-"


def _accuracy(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def has_validation(records: list[dict]) -> bool:
    """Whether the run's members were evaluated on a validation split."""
    return any(r.get("val_accuracy") is not None for r in records)


def has_predictions(records: list[dict]) -> bool:
    """Whether a latency model predicted any member's speed (`evolve --bench`)."""
    return any(r.get("fps_predicted") for r in records)


def has_fps(records: list[dict]) -> bool:
    """Whether any member's speed was measured (`evolve --bench`)."""
    return any(r.get("fps") for r in records)


def table1_header(records: list[dict]) -> list[str]:
    return (TABLE1_HEADER + (["Val. acc."] if has_validation(records) else [])
            + (["FPS"] if has_fps(records) else [])
            + (["Pred. FPS"] if has_predictions(records) else []))


FRONTIER_HEADER = ["Gen.", "Best acc.", "Fastest >= floor", "Val. acc.", "Acc.", "FPS", "Pred. FPS",
                   "On front"]


def frontier_table(rows: list[dict]) -> list[list[str]]:
    """The FPS/accuracy frontier per generation (see `frontier.frontier_rows`) as text cells;
    the FPS of a member that meets the target is starred. "Best acc." is the test accuracy of
    the generation's best member on validation; the floor applies to "Val. acc."."""
    return [
        [
            str(row["generation"]),
            f"{row['best_accuracy']:.4f}",
            row["fastest"] or "-",
            _accuracy(row.get("val_accuracy")),
            _accuracy(row["accuracy"]),
            _fps(row["fps"]) + (" *" if row["meets_target"] else ""),
            _fps(row["fps_predicted"]),
            str(len(row["front"])),
        ]
        for row in rows
    ]


def layer_table(records: list[dict]) -> list[list[str]]:
    """Seed 001 Table 2: per-layer cluster efficiency and overall (E), best member per
    generation on validation (its test accuracy shown)."""
    return [
        [str(r["generation"]), f"{r['accuracy']:.4f}"]
        + [f"{e:.2f}X" for e in r["layer_cluster_efficiency"]]
        + [f"{r['cluster_efficiency']:.2f}X"]
        for r in _best_per_generation(records)
    ]


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


TABLE1_HEADER = ["Gen.", "Member", "A-E (synapses)", "Clusters", "MACs", "Acc."]


def table2_header(records: list[dict]) -> list[str]:
    return ["Gen.", "Acc."] + [f"Layer {i + 1}" for i in range(len(records[0]["layers"]))] + ["E"]


def write_markdown(run_dir: Path, records: list[dict], frontier: list[dict] | None = None,
                   pressure: list[dict] | None = None) -> Path:
    """The tables as Markdown in RUN/report/tables.md, to read without jetsynth (the frontier
    when members were timed, the pressure per generation when given)."""

    def markdown(header: list[str], rows: list[list[str]]) -> str:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])

    path = Path(run_dir) / "report" / "tables.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "## Architectural efficiency vs accuracy (seed 001, Table 1)\n\n"
        + markdown(table1_header(records), efficiency_table(records))
        + "\n\n## Cluster efficiency per layer (seed 001, Table 2)\n\n"
        + markdown(table2_header(records), layer_table(records))
        + "\n"
        + (
            "\n## FPS/accuracy frontier per generation (* meets --target-fps)\n\n"
            + markdown(FRONTIER_HEADER, frontier_table(frontier)) + "\n"
            if frontier and any(row["front"] for row in frontier) else ""
        )
        + (
            "\n## Environmental pressure per generation\n\n"
            + markdown(PRESSURE_HEADER, pressure_table(pressure)) + "\n"
            if pressure else ""
        )
    )
    return path


def write_plots(run_dir: Path, records: list[dict]) -> list[Path]:
    """PNG plots of accuracy, synaptic and cluster efficiency vs generation (every member as a
    dot, the best per generation as a line), and per-layer cluster efficiency."""
    plt = pyplot()
    out_dir = Path(run_dir) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    best = _best_per_generation(records)
    written = []
    panels = [
        ("accuracy", "test accuracy", False),
        ("synaptic_efficiency", "synaptic efficiency (×, ancestor / offspring)", True),
        ("cluster_efficiency", "cluster efficiency (×, ancestor / offspring)", True),
    ]
    if has_fps(records):
        panels.append(("fps", "measured throughput (images/s)", True))
    for key, label, log in panels:
        dots = [r for r in records if r.get(key) is not None]
        line = [r for r in best if r.get(key) is not None]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter([r["generation"] for r in dots], [r[key] for r in dots],
                   s=14, alpha=0.5, label="members")
        ax.plot([r["generation"] for r in line], [r[key] for r in line], marker="o",
                label="best member on validation")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("generation")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"{key}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    names = [layer["name"] for layer in records[0]["layers"]]
    for i, name in enumerate(names):
        ax.plot([r["generation"] for r in best], [r["layer_cluster_efficiency"][i] for r in best],
                marker="o", label=f"layer {i + 1} ({name})")
    ax.set_yscale("log")
    ax.set_xlabel("generation")
    ax.set_ylabel("cluster efficiency per layer (×)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / "layer_cluster_efficiency.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)
    return written


def generation_similarity(run_dir: Path, generation: int, mode: str) -> tuple[list[str], np.ndarray]:
    """Member ids and the %overlap matrix (seed 002, eq. 4) of one generation."""
    run = RunDirectory(Path(run_dir))
    ids = [r["id"] for r in run.records() if r["generation"] == generation]
    if not ids:
        raise JetsynthError(f"{run_dir} has no finished member in generation {generation}")
    return ids, overlap_matrix(aligned_presences([run.masks(i) for i in ids], mode))


def overlap_by_generation(run_dir: Path, records: list[dict], mode: str) -> list[dict]:
    """Seed 002 Table 1: the average pairwise overlap of each generation."""
    generations = sorted({r["generation"] for r in records})
    rows = []
    for generation in generations:
        ids, matrix = generation_similarity(run_dir, generation, mode)
        rows.append({"generation": generation, "members": len(ids),
                     "average_overlap": average_overlap(matrix)})
    return rows


def write_similarity_heatmap(run_dir: Path, generation: int, ids: list[str],
                             matrix: np.ndarray) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(ids), 1.0 + 0.5 * len(ids)))
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(ids)), ids, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(ids)), ids, fontsize=8)
    for i in range(len(ids)):
        for j in range(len(ids)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] < 0.6 else "black")
    ax.set_title(f"cluster overlap |A∩B|/|A|, generation {generation} (row A, column B)",
                 fontsize=9)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    path = Path(run_dir) / "report" / f"similarity_g{generation:02d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_population_plots(run_dir: Path, records: list[dict], precision: str) -> list[Path]:
    """Seed 002 Fig. 1 (accuracy vs storage size, one colour per generation) and the family
    tree (each member a node in its generation's row, an edge to each parent)."""
    plt = pyplot()
    out_dir = Path(run_dir) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    bytes_per_weight = 2 if precision == "fp16" else 4
    fig, ax = plt.subplots(figsize=(6, 4))
    points = ax.scatter([r["synapses"] * bytes_per_weight / 1024 for r in records],
                        [r["accuracy"] for r in records],
                        c=[r["generation"] for r in records], cmap="viridis", s=18)
    ax.set_xscale("log")
    ax.set_xlabel(f"storage size of live weights (KiB, {precision})")
    ax.set_ylabel("test accuracy")
    ax.grid(True, alpha=0.3)
    fig.colorbar(points, ax=ax, label="generation")
    fig.tight_layout()
    storage = out_dir / "accuracy_vs_storage.png"
    fig.savefig(storage, dpi=120)
    plt.close(fig)

    position = {r["id"]: (r["member"], -r["generation"]) for r in records}
    fig, ax = plt.subplots(figsize=(2 + 0.6 * max(r["member"] + 1 for r in records),
                                    1 + 0.45 * max(r["generation"] for r in records)))
    for record in records:
        x, y = position[record["id"]]
        for parent in record["parents"]:
            if parent in position:
                px, py = position[parent]
                ax.plot([px, x], [py, y], color="grey", alpha=0.4, linewidth=0.8)
    nodes = ax.scatter([position[r["id"]][0] for r in records],
                       [position[r["id"]][1] for r in records],
                       c=[r["accuracy"] for r in records], cmap="plasma", s=40, zorder=3)
    ax.set_yticks([-g for g in sorted({r["generation"] for r in records})],
                  [str(g) for g in sorted({r["generation"] for r in records})])
    ax.set_ylabel("generation")
    ax.set_xlabel("member")
    fig.colorbar(nodes, ax=ax, label="test accuracy")
    ax.set_title("family tree (edges to parents)", fontsize=9)
    fig.tight_layout()
    tree = out_dir / "family_tree.png"
    fig.savefig(tree, dpi=120)
    plt.close(fig)
    return [storage, tree]


def write_frontier_plot(run_dir: Path, records: list[dict], floor: float,
                        target_fps: float | None = None) -> Path:
    """Validation accuracy (what the floor and the front are about) vs speed of every member
    (colour: generation; hollow: predicted, not measured),
    the Pareto front of the run as a step line, the accuracy floor and the target FPS."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    timed = [r for r in records if r.get("fps") or r.get("fps_predicted")]
    generations = [r["generation"] for r in timed]
    low, high = min(generations), max(generations)
    colours = plt.get_cmap("viridis")
    for measured in (True, False):
        chosen = [r for r in timed if bool(r.get("fps")) == measured]
        if not chosen:
            continue
        shades = [colours((r["generation"] - low) / max(high - low, 1)) for r in chosen]
        ax.scatter([speed(r) for r in chosen], [selection_accuracy(r) for r in chosen],
                   s=26, facecolors=shades if measured else "none", edgecolors=shades,
                   label="measured" if measured else "predicted")
    front = pareto_front(records)
    ax.step([speed(r) for r in front], [selection_accuracy(r) for r in front],
            where="post", color="black", linewidth=1, label="frontier")
    ax.axhline(floor, color="red", linestyle="--", linewidth=0.8, label=f"accuracy floor {floor:.4f}")
    if target_fps:
        ax.axvline(target_fps, color="green", linestyle="--", linewidth=0.8,
                   label=f"target {target_fps:,.0f} FPS")
    mappable = plt.cm.ScalarMappable(cmap=colours, norm=plt.Normalize(low, high))
    fig.colorbar(mappable, ax=ax, label="generation")
    ax.set_xscale("log")
    ax.set_xlabel("images per second")
    ax.set_ylabel("validation accuracy" if has_validation(records) else "test accuracy")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path = Path(run_dir) / "report" / "frontier.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
