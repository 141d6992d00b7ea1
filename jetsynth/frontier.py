"""The FPS/accuracy frontier of a run: which members no other member beats on both speed and
accuracy, and, generation by generation, the fastest member that keeps the accuracy floor.

Speed is measured FPS where a member was timed and the latency model's prediction otherwise;
each row says which, so a reader can tell a promise from a measurement.
"""

from __future__ import annotations

from .selection import speed


def pareto_front(records: list[dict]) -> list[dict]:
    """Members with a speed that no other member matches or beats on both speed and accuracy
    while beating it on one, ordered from fastest to most accurate."""
    timed = [r for r in records if speed(r)]
    front = []
    for record in sorted(timed, key=lambda r: (-speed(r), -r["accuracy"])):
        if not front or record["accuracy"] > front[-1]["accuracy"]:
            front.append(record)
    return front


def meets_target(record: dict, target_fps: float | None, floor: float) -> bool:
    """Whether `record` reached `target_fps` by measurement (a prediction never counts) with
    accuracy at or above `floor`."""
    return (target_fps is not None and bool(record.get("fps")) and record["fps"] >= target_fps
            and record["accuracy"] >= floor)


def source(record: dict) -> str:
    """'measured' when the member was timed, 'predicted' when only the model spoke, '-' else."""
    if record.get("fps"):
        return "measured"
    return "predicted" if record.get("fps_predicted") else "-"


def frontier_rows(records: list[dict], floor: float, target_fps: float | None = None) -> list[dict]:
    """Per generation: its best accuracy, its fastest member at or above `floor` (speed,
    measured and predicted FPS, accuracy), whether any of its members reached `target_fps` by
    measurement at or above the floor, and the ids on the front of all members so far."""
    rows = []
    for generation in sorted({r["generation"] for r in records}):
        members = [r for r in records if r["generation"] == generation]
        kept = [r for r in members if r["accuracy"] >= floor and speed(r)]
        fastest = max(kept, key=speed, default=None)
        rows.append({
            "generation": generation,
            "members": len(members),
            "best_accuracy": max(r["accuracy"] for r in members),
            "fastest": fastest["id"] if fastest else None,
            "accuracy": fastest["accuracy"] if fastest else None,
            "fps": fastest.get("fps") if fastest else None,
            "fps_predicted": fastest.get("fps_predicted") if fastest else None,
            "source": source(fastest) if fastest else "-",
            "meets_target": any(meets_target(r, target_fps, floor) for r in members),
            "front": [r["id"] for r in pareto_front([r for r in records if r["generation"] <= generation])],
        })
    return rows
