"""Each setting declared once, in its section, with the range or names it accepts."""

import math

import pytest

from jetsynth.run.bounds import Bounds
from jetsynth.run.config import EvolveConfig
from jetsynth.run.options import EVOLVE_OPTIONS, SECTIONS
from jetsynth.run.settings import (
    SECTION_OF,
    SECTION_TYPES,
    EvolutionSettings,
    TimingSettings,
    setting_fields,
)


def test_every_setting_lies_in_exactly_one_section():
    names = [f.name for f in setting_fields()]
    assert len(names) == len(set(names)) == len(SECTION_OF)
    assert set(SECTION_TYPES) & set(names) == set(), "a section named like a setting"


def test_the_help_sections_are_the_settings_sections():
    assert [title for title, _ in SECTIONS] == [kind.TITLE for kind in SECTION_TYPES.values()]
    listed = [name for _, names in SECTIONS for name in names]
    assert sorted(listed) == sorted(o.field for o in EVOLVE_OPTIONS)


def test_an_option_takes_the_range_its_setting_declares():
    by_field = {o.field: o for o in EVOLVE_OPTIONS}
    assert by_field["keep"].number == Bounds(float, 0, 1, low_open=True)
    assert by_field["overlap_band"].number == (Bounds(float, 0, 1), Bounds(float, 0, 1))
    assert by_field["precision"].choices == ("fp32", "fp16")


@pytest.mark.parametrize(("bounds", "value", "inside"), [
    (Bounds(int, 1, 10), 1, True),
    (Bounds(int, 1, 10), 10, True),
    (Bounds(int, 1, 10), 0, False),
    (Bounds(int, 1, 10), 2.0, False),  # an integer setting takes no float
    (Bounds(float, 0, 1, low_open=True), 0.0, False),
    (Bounds(float, 0, 1, low_open=True), 1, True),  # a float setting takes an int
    (Bounds(float, 0, 1, high_open=True), 1.0, False),
    (Bounds(float, 0), math.inf, False),
    (Bounds(float, 0), math.nan, False),
    (Bounds(float, 0), True, False),
])
def test_bounds_contain_by_hand(bounds, value, inside):
    assert bounds.contains(value) is inside


def test_bounds_in_words():
    assert Bounds(int, 1, 10).wanted() == "an integer in [1, 10]"
    assert Bounds(float, 0, 1, low_open=True).words() == "in (0, 1]"
    assert Bounds(float, 0, low_open=True).wanted() == "a finite number > 0"


@pytest.mark.parametrize(("section", "settings", "message"), [
    (EvolutionSettings(keep=0.0), ("keep",), "`keep` must be a finite number in (0, 1], got 0.0"),
    (EvolutionSettings(population=0), ("population",), "`population` must be an integer in [1, "),
    (EvolutionSettings(alphas=(1.0, -1.0), parents=2), ("alphas",), "`alphas` must be"),
    (EvolutionSettings(overlap_band=(0.9, 0.5)), ("overlap_band",), "LOW <= HIGH"),
    (EvolutionSettings(cluster="layer"), ("cluster",), "`cluster` must be one of kernel, filter"),
    (EvolutionSettings(max_drop=0.01, accuracy_floor=0.9), ("max_drop", "accuracy_floor"),
     "not both"),
    (TimingSettings(target_fps=30.0), ("target_fps", "bench"), "`target_fps` needs measured speed"),
])
def test_a_section_names_the_settings_of_each_problem(section, settings, message):
    problems = list(section.problems())
    assert problems and problems[0].settings == settings
    assert message in problems[0].message


def test_the_api_sees_setting_names():
    from jetsynth.errors import JetsynthError

    with pytest.raises(JetsynthError) as caught:
        EvolveConfig(max_drop=0.01, accuracy_floor=0.9).resolved()
    assert caught.value.settings == ("max_drop", "accuracy_floor")
    assert "give `max_drop` (relative to the ancestor) or `accuracy_floor`" in str(caught.value)
