"""Seed 001's tables and plots from a run directory, and the machine-readable summary.

Choose on validation, report on test: every "best" member (per generation, `export --best`) and
the accuracy floor use `selection.selection_accuracy` (validation accuracy; test accuracy for
records from before the validation split), and `accuracy` stays the test accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jetsynth.core.frontier import FrontierRow, frontier_rows, source
from jetsynth.core.records import MemberRecord
from jetsynth.core.selection import selection_accuracy
from jetsynth.core.similarity import aligned_presences, average_overlap, overlap_matrix
from jetsynth.errors import JetsynthError
from jetsynth.report.text import markdown_cell
from jetsynth.run.config import EvolveConfig
from jetsynth.run.rundir import RunDirectory, load_records
from jetsynth.storage import atomic_write

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
    "fps_iqr",
    "fps_predicted",
)


def summary(run_dir: Path) -> dict:
    """The `report --json` object (DESIGN.md §4): the ancestor's figures and every member's."""
    config, records = load_records(run_dir)
    layer_names = [layer.name for layer in records[0].layers]

    def entry(record: MemberRecord) -> dict:
        written = record.to_json()
        out = {key: written.get(key) for key in SUMMARY_FIELDS}
        out["fps_source"] = source(record)
        out["fps_produced_by"] = record.bench.produced_by if record.bench else None
        out["layers"] = [
            {**layer.to_json(), "cluster_efficiency": eff}
            for layer, eff in zip(record.layers, record.layer_cluster_efficiency, strict=False)
        ]
        return out

    return {
        "run_dir": str(run_dir),
        "config": config.flat(),
        "layers": layer_names,
        "ancestor": entry(records[0]),
        "members": [entry(r) for r in records],
        "generations": [row.to_json() for row in overlap_by_generation(run_dir, records,
                                                                       config.cluster)],
        "accuracy_floor": run_floor(config, records),
        "frontier": [row.to_json() for row in frontier_rows(records, run_floor(config, records),
                                                             config.target_fps)],
        "pressure": [row.to_json() for row in pressure_rows(records, run_floor(config, records))],
    }


@dataclass(frozen=True)
class PressureRow:
    """One generation under environmental pressure (see `pressure_rows`): the `keep` share its
    offspring were drawn under, its best validation accuracy, the accuracy `floor` (fractions),
    how many members kept it (`at_floor`), and the smallest of those as ancestor / member ratios
    (`synaptic_efficiency`, `mac_reduction`; None when no member kept the floor)."""

    generation: int
    keep: float
    best_val_accuracy: float
    floor: float
    at_floor: int
    synaptic_efficiency: float | None
    mac_reduction: float | None

    def to_json(self) -> dict[str, Any]:
        """The row as `report --json` writes it."""
        return asdict(self)


def pressure_rows(records: list[MemberRecord], floor: float) -> list[PressureRow]:
    """Per generation: the keep share its offspring were drawn under (the most any member got:
    a member whose parents allowed no viable draw inherits a structure whole, at 1), its best
    validation accuracy against the floor, and its smallest member at the floor (synaptic
    efficiency and MAC reduction, None when no member kept the floor)."""
    rows = []
    for generation in sorted({r.generation for r in records}):
        members = [r for r in records if r.generation == generation]
        kept = [r for r in members if selection_accuracy(r) >= floor]
        smallest = min(kept, key=lambda r: (r.macs, r.synapses)) if kept else None
        rows.append(PressureRow(
            generation=generation,
            keep=min(r.environment.keep if r.environment else 1.0 for r in members),
            best_val_accuracy=max(selection_accuracy(r) for r in members),
            floor=floor,
            at_floor=len(kept),
            synaptic_efficiency=smallest.synaptic_efficiency if smallest else None,
            mac_reduction=smallest.mac_reduction if smallest else None,
        ))
    return rows


def pressure_table(rows: list[PressureRow]) -> list[list[str]]:
    return [[str(r.generation), f"{r.keep:.3f}", f"{r.best_val_accuracy:.4f}", f"{r.floor:.4f}",
             str(r.at_floor), times(r.synaptic_efficiency), times(r.mac_reduction)] for r in rows]


PRESSURE_HEADER = ["Gen.", "Keep", "Best val. acc.", "Floor", "At floor", "Synaptic eff.",
                   "MAC red."]


def run_floor(config: EvolveConfig, records: list[MemberRecord]) -> float:
    """The run's accuracy floor (on validation): --accuracy-floor, else one point under the
    ancestor's validation accuracy."""
    return config.floor(selection_accuracy(records[0]))


def _best_per_generation(records: list[MemberRecord]) -> list[MemberRecord]:
    best: dict[int, MemberRecord] = {}
    for record in records:
        kept = best.get(record.generation)
        if kept is None or selection_accuracy(record) > selection_accuracy(kept):
            best[record.generation] = record
    return [best[g] for g in sorted(best)]


def efficiency_table(records: list[MemberRecord], precision: str = "fp32") -> list[list[str]]:
    """Seed 001 Table 1, absolute figures beside the ratios: generation, member, live synapses
    and synaptic efficiency, clusters and cluster efficiency, multiply-accumulates per image and
    their reduction, the live weights' size (KiB at the run's `precision`), test accuracy (and
    validation accuracy when the run has one), measured FPS with the latency of one query (ms),
    and predicted FPS. Every ratio is ancestor / member, written with ×."""
    measured = has_fps(records)
    predicted = has_predictions(records)
    validated = has_validation(records)
    return [
        [
            str(r.generation),
            str(r.member),
            f"{r.synapses:,}",
            times(r.synaptic_efficiency),
            f"{r.clusters:,}",
            times(r.cluster_efficiency),
            f"{r.macs:,}",
            times(r.mac_reduction),
            f"{weights_kib(r, precision):,.1f}",
            f"{r.accuracy:.4f}",
        ]
        + ([_accuracy(r.val_accuracy)] if validated else [])
        + ([_fps(r.fps), _fps_range(r), _latency_ms(r)] if measured else [])
        + ([_fps(r.fps_predicted)] if predicted else [])
        for r in records
    ]


def times(value: float | None) -> str:
    """A ratio as '2.35×' (the one symbol for 'times' in every table); '–' when not known."""
    return "–" if value is None else f"{value:.2f}×"


BYTES_PER_WEIGHT = {"fp16": 2, "fp32": 4}


def weights_kib(record: MemberRecord, precision: str) -> float:
    """KiB of the member's live weights at `precision` (what a compacted export stores, biases
    aside)."""
    return record.synapses * BYTES_PER_WEIGHT.get(precision, 4) / 1024


def _latency_ms(record: MemberRecord) -> str:
    """Milliseconds per timed query (batch images) of a measured member, else '-'."""
    fps = record.fps
    if not fps:
        return "-"
    batch = record.bench.batch if record.bench else 1
    return f"{1000.0 * batch / fps:.3f}"


def _fps(value: float | None) -> str:
    return f"{value:,.0f}" if value else "-"


def _fps_range(record: MemberRecord) -> str:
    """The interquartile range of a measured speed, '3,700–3,950'; '-' when not recorded."""
    iqr = record.fps_iqr if record.fps else None
    return f"{iqr[0]:,.0f}–{iqr[1]:,.0f}" if iqr else "-"


def _accuracy(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def has_validation(records: list[MemberRecord]) -> bool:
    """Whether the run's members were evaluated on a validation split."""
    return any(r.val_accuracy is not None for r in records)


def has_predictions(records: list[MemberRecord]) -> bool:
    """Whether a latency model predicted any member's speed (`evolve --bench`)."""
    return any(r.fps_predicted for r in records)


def has_fps(records: list[MemberRecord]) -> bool:
    """Whether any member's speed was measured (`evolve --bench`)."""
    return any(r.fps for r in records)


def table1_header(records: list[MemberRecord]) -> list[str]:
    return (TABLE1_HEADER + (["Val. acc."] if has_validation(records) else [])
            + (["FPS", "FPS IQR", "Latency (ms)"] if has_fps(records) else [])
            + (["Pred. FPS"] if has_predictions(records) else []))


FRONTIER_HEADER = ["Gen.", "Best acc.", "Fastest >= floor", "Val. acc.", "Acc.", "FPS", "Pred. FPS",
                   "On front"]


def frontier_table(rows: list[FrontierRow]) -> list[list[str]]:
    """The FPS/accuracy frontier per generation (see `frontier.frontier_rows`) as text cells;
    the FPS of a member that meets the target is starred. "Best acc." is the test accuracy of
    the generation's best member on validation; the floor applies to "Val. acc."."""
    return [
        [
            str(row.generation),
            f"{row.best_accuracy:.4f}",
            row.fastest or "-",
            _accuracy(row.val_accuracy),
            _accuracy(row.accuracy),
            _fps(row.fps) + (" *" if row.meets_target else ""),
            _fps(row.fps_predicted),
            str(len(row.front)),
        ]
        for row in rows
    ]


def layer_table(records: list[MemberRecord]) -> list[list[str]]:
    """Seed 001 Table 2: per-layer cluster efficiency and overall (E), best member per
    generation on validation (its test accuracy shown)."""
    return [
        [str(r.generation), f"{r.accuracy:.4f}"]
        + [times(e) for e in r.layer_cluster_efficiency]
        + [times(r.cluster_efficiency)]
        for r in _best_per_generation(records)
    ]


TABLE1_HEADER = ["Gen.", "Member", "Synapses", "Synaptic eff.", "Clusters", "Cluster eff.", "MACs",
                 "MAC red.", "Weights (KiB)", "Test acc."]
TABLE1_TITLE, TABLE1_SOURCE = "Architectural efficiency vs accuracy", "seed 001, Table 1 (A-E: synaptic eff.)"
TABLE2_TITLE, TABLE2_SOURCE = "Cluster efficiency per layer", "seed 001, Table 2 (E: all layers)"


def table2_header(records: list[MemberRecord]) -> list[str]:
    from jetsynth.report.plotting import layer_labels

    return ["Gen.", "Test acc."] + layer_labels(records[0].layers) + ["All layers"]


WIDE_LAYERS = 8
"""Beyond this many layers, Table 2 is shown transposed (a row per layer), so a ResNet-18's 21 or
a MobileNetV2's 52 layers read down the page instead of wrapping across it."""


def layer_view(records: list[MemberRecord]) -> tuple[list[str], list[list[str]]]:
    """Table 2's header and rows as shown: seed 001's layout (a row per generation) for up to
    WIDE_LAYERS layers, else transposed: a row per layer (named as in the model), a column per
    generation, test accuracy first and all layers last."""
    header, rows = table2_header(records), layer_table(records)
    if len(header) - 3 <= WIDE_LAYERS:
        return header, rows
    columns = list(zip(*rows, strict=True))
    transposed = [[name, *values] for name, values in zip(header[1:], columns[1:], strict=True)]
    return ["Layer", *(f"Gen. {g}" for g in columns[0])], transposed


def write_markdown(run_dir: Path, records: list[MemberRecord],
                   frontier: list[FrontierRow] | None = None,
                   pressure: list[PressureRow] | None = None, precision: str = "fp32") -> Path:
    """The tables as Markdown in RUN/report/tables.md, to read without jetsynth (the frontier
    when members were timed, the pressure per generation when given)."""

    def markdown(header: list[str], rows: list[list[str]]) -> str:
        lines = ["| " + " | ".join(map(markdown_cell, header)) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(map(markdown_cell, row)) + " |" for row in rows])

    path = Path(run_dir) / "report" / "tables.md"
    text = (
        f"## {TABLE1_TITLE}\n\n*{TABLE1_SOURCE}*\n\n"
        + markdown(table1_header(records), efficiency_table(records, precision))
        + f"\n\n## {TABLE2_TITLE}\n\n*{TABLE2_SOURCE}*\n\n"
        + markdown(*layer_view(records))
        + "\n"
        + (
            "\n## FPS/accuracy frontier per generation (* meets --target-fps)\n\n"
            + markdown(FRONTIER_HEADER, frontier_table(frontier)) + "\n"
            if frontier and any(row.front for row in frontier) else ""
        )
        + (
            "\n## Environmental pressure per generation\n\n"
            + markdown(PRESSURE_HEADER, pressure_table(pressure)) + "\n"
            if pressure else ""
        )
    )
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), run_dir)
    return path


def generation_similarity(run_dir: Path, generation: int, mode: str) -> tuple[list[str], np.ndarray]:
    """Member ids and the %overlap matrix (seed 002, eq. 4) of one generation."""
    run = RunDirectory(Path(run_dir))
    ids = [r.id for r in run.records() if r.generation == generation]
    if not ids:
        raise JetsynthError(f"{run_dir} has no finished member in generation {generation}")
    return ids, overlap_matrix(aligned_presences([run.masks(i) for i in ids], mode))


@dataclass(frozen=True)
class OverlapRow:
    """One generation of seed 002's Table 1: its finished `members` and their average pairwise
    cluster overlap |A∩B|/|A| (a fraction; seed 002, eq. 4)."""

    generation: int
    members: int
    average_overlap: float

    def to_json(self) -> dict[str, Any]:
        """The row as `report --json` writes it."""
        return asdict(self)


def overlap_by_generation(run_dir: Path, records: list[MemberRecord], mode: str) -> list[OverlapRow]:
    """Seed 002 Table 1: the average pairwise overlap of each generation."""
    generations = sorted({r.generation for r in records})
    rows = []
    for generation in generations:
        ids, matrix = generation_similarity(run_dir, generation, mode)
        rows.append(OverlapRow(generation, len(ids), average_overlap(matrix)))
    return rows
