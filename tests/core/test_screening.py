import pytest

from jetsynth.core.screening import pick_draw


def test_the_lowest_loss_among_draws_no_costlier_than_the_median():
    """Costs 10, 14, 9, 12 have median 11: draws 0 and 2 compete, and draw 1's lower loss does
    not count because it kept more."""
    assert pick_draw([0.50, 0.30, 0.45, 0.40], [10, 14, 9, 12]) == 2


def test_an_odd_count_includes_the_median_draw_and_ties_go_first():
    assert pick_draw([0.2, 0.1, 0.3], [5, 6, 7]) == 1
    assert pick_draw([0.2, 0.2, 0.3], [5, 5, 7]) == 0
    assert pick_draw([0.7], [3]) == 0


def test_losses_and_costs_must_pair_up():
    with pytest.raises(ValueError):
        pick_draw([0.1, 0.2], [1])
