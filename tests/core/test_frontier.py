from jetsynth.core.frontier import frontier_rows, meets_target, pareto_front, source
from tests.member_records import member, members

RECORDS = members(
    {"id": "g01-m00", "generation": 1, "accuracy": 0.99, "fps": 100.0},
    {"id": "g02-m00", "generation": 2, "accuracy": 0.985, "fps": 300.0},
    {"id": "g02-m01", "generation": 2, "accuracy": 0.98, "fps": 250.0},
    {"id": "g03-m00", "generation": 3, "accuracy": 0.95, "fps": 900.0},
    {"id": "g03-m01", "generation": 3, "accuracy": 0.982, "fps": None, "fps_predicted": 500.0},
)


def test_pareto_front_by_hand():
    # g02-m01 is beaten by g02-m00 on both; everyone else trades speed for accuracy
    assert [r.id for r in pareto_front(RECORDS)] == ["g03-m00", "g03-m01", "g02-m00", "g01-m00"]
    tie = members({"id": "a", "accuracy": 0.9, "fps": 10.0}, {"id": "b", "accuracy": 0.9, "fps": 10.0})
    assert len(pareto_front(tie)) == 1


def test_frontier_rows_by_generation():
    rows = frontier_rows(RECORDS, floor=0.98, target_fps=280.0)
    assert [r.fastest for r in rows] == ["g01-m00", "g02-m00", "g03-m01"]
    assert [r.meets_target for r in rows] == [False, True, False]
    assert rows[2].source == "predicted" and rows[2].fps is None and rows[2].fps_predicted == 500.0
    assert rows[1].front == ("g02-m00", "g01-m00") and rows[1].best_accuracy == 0.985
    assert source(RECORDS[0]) == "measured" and source(member(fps=None)) == "-"
    assert frontier_rows(RECORDS, floor=0.999)[0].fastest is None


def test_floor_and_front_use_validation_accuracy():
    records = members(
        {"id": "g01-m00", "generation": 1, "accuracy": 0.99, "val_accuracy": 0.99, "fps": 100.0},
        {"id": "g02-m00", "generation": 2, "accuracy": 0.99, "val_accuracy": 0.90, "fps": 900.0},
        {"id": "g02-m01", "generation": 2, "accuracy": 0.95, "val_accuracy": 0.985, "fps": 300.0},
    )
    assert not meets_target(records[1], 200.0, 0.98) and meets_target(records[2], 200.0, 0.98)
    rows = frontier_rows(records, floor=0.98, target_fps=200.0)
    assert rows[1].fastest == "g02-m01"
    assert (rows[1].val_accuracy, rows[1].accuracy) == (0.985, 0.95)
    assert rows[1].best_accuracy == 0.95  # test accuracy of the best on validation


def test_a_generations_fastest_is_chosen_by_measurement_when_it_has_one():
    records = members(
        {"id": "g01-m00", "generation": 1, "accuracy": 0.99, "val_accuracy": 0.99, "fps": 100.0},
        {"id": "g02-m00", "generation": 2, "accuracy": 0.99, "val_accuracy": 0.99, "fps": 300.0},
        {"id": "g02-m01", "generation": 2, "accuracy": 0.99, "val_accuracy": 0.99, "fps": None,
         "fps_predicted": 900.0},
        {"id": "g03-m00", "generation": 3, "accuracy": 0.99, "val_accuracy": 0.99, "fps": None,
         "fps_predicted": 500.0},
    )
    rows = frontier_rows(records, floor=0.98)
    assert [(r.fastest, r.source) for r in rows] == [
        ("g01-m00", "measured"), ("g02-m00", "measured"), ("g03-m00", "predicted")]
