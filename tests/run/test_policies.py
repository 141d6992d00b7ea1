"""The settings a run leaves open, filled by one table of named policies and modes."""

import pytest

from jetsynth.run.policies import POLICIES, mode, policy_name, with_policy
from jetsynth.run.settings import EvolutionSettings


@pytest.mark.parametrize(("given", "target", "expected"), [
    ({}, None, ("user-first", "open")),
    ({"max_drop": 0.02}, None, ("user-first", "floor")),
    ({"accuracy_floor": 0.9}, 30.0, ("user-first", "target")),
    ({"preset": "seed002"}, None, ("seed", "open")),
    ({"preset": "seed001", "accuracy_floor": 0.9}, None, ("seed", "floor")),
])
def test_the_policy_and_mode_a_run_falls_under(given, target, expected):
    evolution = EvolutionSettings(**given)
    assert (policy_name(evolution), mode(evolution, target)) == expected


def test_open_settings_are_filled_and_given_ones_kept():
    filled = with_policy(EvolutionSettings(keep=0.7), None, "digits", "macs")
    assert (filled.keep, filled.generations, filled.pressure_on, filled.max_drop) == (0.7, 8, "macs", 0.01)
    assert with_policy(EvolutionSettings(), None, "mnist", "latency").generations == 30
    assert with_policy(EvolutionSettings(), None, "mnist", "latency").pressure_on == "latency"
    # an absolute floor given: no relative one beside it
    assert with_policy(EvolutionSettings(accuracy_floor=0.9), None, "digits", "macs").max_drop is None
    seed = with_policy(EvolutionSettings(preset="seed001"), None, "digits", "macs")
    assert (seed.generations, seed.keep, seed.pressure_on, seed.patience) == (6, 0.8, "synapses", None)


def test_every_policy_fills_every_open_evolution_setting_it_names():
    assert {key[1] for key in POLICIES} == {"open", "floor", "target"}
    for (name, run_mode), policy in POLICIES.items():
        assert policy.keep in (0.5, 0.8), (name, run_mode)
        assert (policy.selection == "fps") == (run_mode == "target"), (name, run_mode)
