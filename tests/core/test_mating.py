import math

import pytest
import torch

from jetsynth.core.genome import Lineage, ancestor_genome
from jetsynth.core.mating import (
    align,
    environmental_factor,
    equal_alphas,
    mate_product,
    mate_sum,
    rate_for_factor,
    structure,
)
from jetsynth.core.synthesis import SynthesisConfig, synthesize
from jetsynth.run.config import EvolveConfig

CHILD = Lineage("g03-m00", 3, 0, ("a", "b"))


def test_weighted_sum_by_hand():
    strengths = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    assert mate_sum(strengths, equal_alphas(2)).tolist() == [2.0, 1.0]
    assert mate_sum(strengths, torch.tensor([0.25, 0.75])).tolist() == [2.5, 0.5]


def test_product_over_the_parents_that_carry_the_cluster():
    strengths = torch.tensor([[2.0, 2.0, 0.0], [3.0, 0.0, 0.0]])
    present = torch.tensor([[True, True, False], [True, False, False]])
    # (0.5*2)(0.5*3) = 1.5; only parent 0 carries the second: 0.5*2 = 1; nobody the third: 0
    assert mate_product(strengths, equal_alphas(2), present).tolist() == [1.5, 1.0, 0.0]


def test_structure_intersection_and_union():
    present = torch.tensor([[True, True, False], [True, False, False]])
    assert structure(present, "intersection").tolist() == [True, False, False]
    assert structure(present, "union").tolist() == [True, True, False]


def test_environmental_factor_by_hand():
    assert environmental_factor(0.5, 2) == 0.25
    assert environmental_factor(0.2, 1) == pytest.approx(0.8)
    r = rate_for_factor(0.64, 2)
    assert r == pytest.approx(0.2)
    assert environmental_factor(r, 2) == pytest.approx(0.64)


def test_each_offspring_keeps_one_mth_root_of_the_factor():
    """Seed 000 eq. 6 by hand: R = 0.64 with m = 2 gives 1 − r = 0.8 per synthesis, so two
    siblings drawn independently at 0.8 intersect to 0.64; m = 1 keeps R itself."""
    assert SynthesisConfig(keep=0.64, mates=2).share == pytest.approx(0.8)
    assert SynthesisConfig(keep=0.64).share == pytest.approx(0.64)
    assert SynthesisConfig(keep=0.125, mates=3).share == pytest.approx(0.5)


def test_the_share_counts_only_the_parents_a_population_can_give():
    """--parents 5 in a population of 3 intersects three siblings, so each keeps R^(1/3)."""
    assert EvolveConfig(population=3, parents=5).synthesis(3, keep=0.125).share == pytest.approx(0.5)
    assert EvolveConfig(population=8, parents=5).synthesis(1, keep=0.5).mates == 5


def _two_parents_with_halved_fc1():
    """Parents that each keep half of fc1's neurons, a different half but for a quarter they
    share: their intersection is far smaller than either."""
    base = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    masks_a = {k: v.clone() for k, v in base.masks.items()}
    masks_b = {k: v.clone() for k, v in base.masks.items()}
    masks_a["7"][250:] = False
    masks_b["7"][:125] = False
    masks_b["7"][375:] = False
    masks_a["9"][:, 250:] = False
    masks_b["9"][:, :125] = False
    masks_b["9"][:, 375:] = False
    return (base.with_masks(masks_a, Lineage("a", 2, 0, ())),
            base.with_masks(masks_b, Lineage("b", 2, 1, ())))


def test_m_parent_offspring_keeps_its_share_of_the_intersection():
    """The budget applies to the parents' common structure, not to their mean size: with
    R = 0.81 and m = 2 the offspring keeps about 0.9 of the intersection."""
    a, b = _two_parents_with_halved_fc1()
    common = sum(int(v.sum()) for v in structure_of([a, b]).values())
    child = synthesize([a, b], SynthesisConfig(keep=0.81, mates=2, balance=0.0),
                       torch.Generator().manual_seed(0), CHILD)
    kept = sum(int(v.sum()) for v in child.masks.values())
    assert 0.84 * common < kept < 0.96 * common  # the mean size would have kept it all


def structure_of(parents) -> dict:
    return {k: structure(p, "intersection") for k, p in align(parents, "tag")[1].items()}


def _two_parents_with_shifted_units():
    """Parents whose live conv1 filters differ: A keeps filters {0, 2, ...}, B {1, 2, ...}, so
    their compacted position 0 holds different ancestor filters."""
    base = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    masks_a = {k: v.clone() for k, v in base.masks.items()}
    masks_b = {k: v.clone() for k, v in base.masks.items()}
    masks_a["0"][1] = False
    masks_b["0"][0] = False
    a = base.with_masks(masks_a, Lineage("a", 2, 0, ()))
    b = base.with_masks(masks_b, Lineage("b", 2, 1, ()))
    b.state["0.weight"][1] = 7.0
    return a, b


def test_tag_alignment_matches_clusters_by_origin():
    a, b = _two_parents_with_shifted_units()
    weights, present = align([a, b], "tag")
    assert present["0"][:, 0].flatten(1).all(dim=1).tolist() == [True, False]
    assert present["0"][:, 1].flatten(1).all(dim=1).tolist() == [False, True]
    assert structure(present["0"], "intersection").reshape(20, -1).any(dim=1)[:2].tolist() == [
        False, False]


def test_position_alignment_matches_compacted_positions():
    a, b = _two_parents_with_shifted_units()
    weights, present = align([a, b], "position")
    # B's first live filter (ancestor 1) is laid onto A's first live filter (ancestor 0)
    assert torch.equal(weights["0"][1, 0], torch.full((1, 5, 5), 7.0))
    assert present["0"][1, 0].all() and not present["0"][1, 1].any()
    assert structure(present["0"], "intersection").reshape(20, -1).any(dim=1)[:2].tolist() == [
        True, False]


def test_two_parent_offspring_lies_within_the_intersection():
    a, b = _two_parents_with_shifted_units()
    for alignment in ("tag", "position"):
        child = synthesize([a, b], SynthesisConfig(alignment=alignment, keep=0.9),
                           torch.Generator().manual_seed(0), CHILD)
        allowed = structure(align([a, b], alignment)[1]["0"], "intersection")
        assert not (child.masks["0"] & ~allowed).any()
    tagged = synthesize([a, b], SynthesisConfig(keep=0.9), torch.Generator().manual_seed(0), CHILD)
    assert not tagged.masks["0"][:2].any()


def test_union_structure_keeps_clusters_of_either_parent():
    a, b = _two_parents_with_shifted_units()
    child = synthesize([a, b], SynthesisConfig(structure="union", keep=1.0),
                       torch.Generator().manual_seed(0), CHILD)
    assert child.masks["0"][:2].flatten(1).any(dim=1).tolist() == [True, True]


def test_offspring_inherits_the_mean_of_carrying_parents():
    a, b = _two_parents_with_shifted_units()
    b.state["0.weight"][2] = a.state["0.weight"][2] + 1.0
    child = synthesize([a, b], SynthesisConfig(structure="union", keep=1.0),
                       torch.Generator().manual_seed(0), CHILD)
    assert torch.allclose(child.state["0.weight"][2], a.state["0.weight"][2] + 0.5)
    assert torch.equal(child.state["0.weight"][1], torch.full((1, 5, 5), 7.0))  # only B has it


def test_single_parent_mating_is_the_single_parent_synthesis():
    parent = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    one = synthesize(parent, SynthesisConfig(keep=0.5), torch.Generator().manual_seed(3), CHILD)
    listed = synthesize([parent], SynthesisConfig(keep=0.5, mating="product"),
                        torch.Generator().manual_seed(3), CHILD)
    assert all(torch.equal(one.masks[k], listed.masks[k]) for k in one.masks)
    assert math.isclose(float(one.state["7.weight"].abs().sum()),
                        float(listed.state["7.weight"].abs().sum()), rel_tol=1e-6)


def test_a_class_the_intersection_drops_is_read_through_either_parent():
    """Parents that read class 0 through disjoint fc1 neurons: the intersection has no synapse
    for it, yet the offspring still predicts class 0."""
    base = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    masks_a = {k: v.clone() for k, v in base.masks.items()}
    masks_b = {k: v.clone() for k, v in base.masks.items()}
    masks_a["9"][0, 250:] = False
    masks_b["9"][0, :250] = False
    a = base.with_masks(masks_a, Lineage("a", 2, 0, ()))
    b = base.with_masks(masks_b, Lineage("b", 2, 1, ()))
    assert not structure_of([a, b])["9"][0].any()
    child = synthesize([a, b], SynthesisConfig(keep=0.5, mates=2), torch.Generator().manual_seed(0),
                       CHILD)
    assert child.masks["9"].any(dim=1).all()
