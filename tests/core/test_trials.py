"""Spreads and ties on hand-computable cases."""

import pytest

from jetsynth.core.trials import drift, interval, run_trials, spread, ties
from tests.member_records import member


def test_spread_is_the_median_and_the_interquartile_range():
    # numpy's linear quartiles of 1..5: q1 = 2, median = 3, q3 = 4
    result = spread([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (result.q1, result.median, result.q3) == (2.0, 3.0, 4.0)
    assert result.relative == pytest.approx(2 / 3)
    assert not result.agrees(0.1) and result.agrees(0.7)
    assert spread([7.0]).relative == 0.0


def test_trials_that_agree_are_not_re_timed():
    values = iter([100.0, 101.0, 99.0, 100.0, 102.0])
    result, retimed = run_trials(lambda: next(values), trials=5)
    assert retimed == 0 and result.median == 100.0 and result.q1 == 100.0 and result.q3 == 101.0


def test_disagreeing_trials_are_re_timed_two_at_a_time_up_to_the_limit():
    values = iter([100.0, 50.0, 100.0, 50.0, 100.0, 100.0, 100.0, 100.0, 100.0])
    result, retimed = run_trials(lambda: next(values), trials=5, max_trials=11)
    # after 5: q1 50, q3 100 -> re-time; after 7: q1 75, q3 100 (25 %) -> again; after 9: q1 100
    assert retimed == 4 and len(result.trials) == 9 and result.median == 100.0
    noisy = iter([1.0, 10.0] * 10)
    result, retimed = run_trials(lambda: next(noisy), trials=3, max_trials=6)
    assert len(result.trials) == 6 and retimed == 3


def test_ties_are_overlapping_interquartile_ranges():
    a = member(fps=3846.0, fps_iqr=[3700.0, 3950.0])
    b = member(fps=3759.0, fps_iqr=[3600.0, 3800.0])
    c = member(fps=5000.0, fps_iqr=[4900.0, 5100.0])
    assert ties(a, b) and ties(b, a) and not ties(a, c)
    assert interval(member(fps=10.0)) == (10.0, 10.0)  # measured before spreads were recorded
    assert interval(member(fps=None)) is None and not ties(a, member(fps=None))


def test_drift_is_the_reference_speed_now_over_then():
    assert drift(500.0, 1000.0) == 0.5
    assert drift(1000.0, 1000.0) == 1.0
