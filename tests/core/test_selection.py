from dataclasses import replace

import numpy as np
import pytest
import torch

from jetsynth.core.selection import (
    SelectionConfig,
    fitness,
    fps_score,
    select_parents,
    selection_accuracy,
    speed,
)
from tests.member_records import member, members

RECORDS = members(
    {"accuracy": 0.90, "synaptic_efficiency": 1.0},
    {"accuracy": 0.99, "synaptic_efficiency": 4.0},
    {"accuracy": 0.95, "synaptic_efficiency": 128.0},
    {"accuracy": 0.50, "synaptic_efficiency": 1.0},
)


def test_fitness_by_hand():
    assert fitness(RECORDS[1], 0.01) == pytest.approx(0.99 + 0.02)
    assert fitness(RECORDS[2], 0.01) == pytest.approx(0.95 + 0.07)


def test_random_draws_distinct_parents():
    for seed in range(20):
        chosen = select_parents(RECORDS, 3, SelectionConfig(), torch.Generator().manual_seed(seed))
        assert len(set(chosen)) == 3
    assert select_parents(RECORDS, 9, SelectionConfig(), torch.Generator()) != []
    assert len(select_parents(RECORDS, 9, SelectionConfig(), torch.Generator())) == 4


def test_fitness_tournament_with_everyone_picks_the_best():
    config = SelectionConfig(policy="fitness", tournament=4)
    assert select_parents(RECORDS, 2, config, torch.Generator().manual_seed(0)) == [2, 1]


def test_similarity_prefers_mates_in_the_band():
    overlaps = np.array([
        [1.0, 0.95, 0.7, 0.2],
        [0.9, 1.0, 0.8, 0.1],
        [0.6, 0.7, 1.0, 0.3],
        [0.2, 0.2, 0.3, 1.0],
    ])
    config = SelectionConfig(policy="similarity", tournament=4, band=(0.5, 0.8))
    chosen = select_parents(RECORDS, 2, config, torch.Generator().manual_seed(0), overlaps)
    assert chosen[0] == 2  # the fittest
    assert chosen[1] in (0, 1)  # overlaps 0.6 and 0.7 lie in the band, 0.3 does not
    chosen = select_parents(RECORDS, 4, config, torch.Generator().manual_seed(0), overlaps)
    assert sorted(chosen) == [0, 1, 2, 3]


FAST = members(
    {"accuracy": 0.99, "fps": 100.0},
    {"accuracy": 0.97, "fps": 900.0},
    {"accuracy": 0.985, "fps": None, "fps_predicted": 400.0},
    {"accuracy": 0.98, "fps": 300.0},
)


def test_fps_score_by_hand():
    assert fps_score(FAST[1], 0.98) == (0, 0.97)
    assert fps_score(FAST[2], 0.98) == (1, 400.0)
    assert speed(FAST[2]) == 400.0 and speed(member(accuracy=0.5)) is None


def test_fps_tournament_prefers_speed_above_the_floor():
    config = SelectionConfig(policy="fps", tournament=4, floor=0.98)
    # 900 FPS lies below the floor; of the rest, the predicted 400 beats the measured 300 and 100
    assert select_parents(FAST, 3, config, torch.Generator().manual_seed(0)) == [2, 3, 0]
    without_floor = SelectionConfig(policy="fps", tournament=4, floor=0.0)
    assert select_parents(FAST, 1, without_floor, torch.Generator().manual_seed(0)) == [1]


# val and test disagree: "a" is better on test, "b" on validation
DISAGREE = members(
    {"accuracy": 0.99, "val_accuracy": 0.90, "synaptic_efficiency": 1.0, "fps": 500.0},
    {"accuracy": 0.91, "val_accuracy": 0.98, "synaptic_efficiency": 1.0, "fps": 100.0},
)


def test_selection_chooses_on_validation_not_test():
    assert selection_accuracy(DISAGREE[0]) == 0.90
    assert selection_accuracy(member(accuracy=0.7, val_accuracy=None)) == 0.7  # test stands in
    fittest = SelectionConfig(policy="fitness", tournament=2)
    assert select_parents(DISAGREE, 1, fittest, torch.Generator().manual_seed(0)) == [1]
    assert fitness(DISAGREE[1], 0.0) == 0.98
    # a is faster, but only its test accuracy keeps the floor
    fastest = SelectionConfig(policy="fps", tournament=2, floor=0.95)
    assert fps_score(DISAGREE[0], 0.95) == (0, 0.90)
    assert select_parents(DISAGREE, 1, fastest, torch.Generator().manual_seed(0)) == [1]


# the case: two members that time the same within their spreads, the slower one more
# accurate; and a clearly faster one below the floor
TIED = members(
    {"id": "g01-m00", "generation": 1, "member": 0, "accuracy": 0.99, "val_accuracy": 0.99,
     "synaptic_efficiency": 1.0, "macs": 100, "synapses": 10, "fps": 1000.0, "fps_iqr": [950.0, 1050.0]},
    {"id": "g02-m00", "generation": 2, "member": 0, "accuracy": 0.985, "val_accuracy": 0.984,
     "synaptic_efficiency": 2.0, "macs": 50, "synapses": 5, "fps": 3846.0, "fps_iqr": [3700.0, 3950.0]},
    {"id": "g02-m01", "generation": 2, "member": 1, "accuracy": 0.99, "val_accuracy": 0.988,
     "synaptic_efficiency": 2.0, "macs": 60, "synapses": 6, "fps": 3759.0, "fps_iqr": [3600.0, 3800.0]},
    {"id": "g02-m02", "generation": 2, "member": 2, "accuracy": 0.90, "val_accuracy": 0.90,
     "synaptic_efficiency": 9.0, "macs": 5, "synapses": 1, "fps": 9000.0, "fps_iqr": [8900.0, 9100.0]},
)


def test_speeds_that_tie_within_their_spread_are_broken_by_accuracy():
    from jetsynth.core.selection import best_member, pick_member

    chosen, why = best_member(TIED, floor=0.98)
    assert chosen.id == "g02-m01"
    assert "2 members tie on speed within their spreads" in why and "g02-m00 3,846 images/s" in why
    assert "best validation accuracy, 0.9880" in why
    assert pick_member(TIED, max_drop=0.01).id == "g02-m01"
    apart = [*TIED[:2], replace(TIED[2], fps_iqr=(3600.0, 3650.0))]  # ranges no longer overlap
    chosen, why = best_member(apart, floor=0.98)
    assert chosen.id == "g02-m00" and why.startswith("the fastest of 3 members at the floor: 3,846")
    chosen, why = best_member(TIED, floor=0.995)
    assert chosen.id == "g01-m00" and "no member keeps the floor" in why


def test_fps_tournament_breaks_speed_ties_by_accuracy():
    config = SelectionConfig(policy="fps", tournament=4, floor=0.98)
    # every member enters; g02-m00 is fastest at the floor, but g02-m01 ties with it and is better
    assert select_parents(TIED, 1, config, torch.Generator().manual_seed(0)) == [2]
    apart = [*TIED[:2], replace(TIED[2], fps_iqr=(3600.0, 3650.0)), TIED[3]]
    assert select_parents(apart, 1, config, torch.Generator().manual_seed(0)) == [1]


def test_measured_speed_outranks_a_prediction_at_the_floor():
    from jetsynth.core.selection import best_member

    predicted = member(id="g03-m00", generation=3, member=0, accuracy=0.99, val_accuracy=0.99,
                       macs=1, synapses=1, fps=None, fps_predicted=99999.0)
    chosen, why = best_member([*TIED[:3], predicted], floor=0.98)
    assert chosen.id == "g02-m01"  # the measured tie-break as before; the prediction is not picked
    assert "of the 3 of 4 members at the floor that were timed" in why
    chosen, why = best_member([replace(r, fps=None) for r in TIED[:3]], floor=0.98)
    assert chosen.id == "g02-m00" and why.startswith("not every member was timed")
