from dataclasses import MISSING

from jetsynth.run.bounds import Bounds
from jetsynth.run.config import EvolveConfig
from jetsynth.run.options import EVOLVE_OPTIONS, NOT_OPTIONS
from jetsynth.run.settings import setting_fields


def test_every_config_field_is_an_evolve_option_or_listed_as_not_one():
    names = [f.name for f in setting_fields()]
    options = [o.field for o in EVOLVE_OPTIONS]
    assert len(options) == len(set(options)), "a field with two options"
    assert set(options) & NOT_OPTIONS == set(), "a field both an option and listed as not one"
    assert set(names) - set(options) - NOT_OPTIONS == set(), "fields with no option: add one or list them"
    assert set(options) | NOT_OPTIONS <= set(names), "options for fields EvolveConfig does not have"


def test_option_names_follow_the_fields_unless_named():
    by_field = {o.field: o.option for o in EVOLVE_OPTIONS}
    assert by_field["batch_size"] == "--batch-size"
    assert by_field["alphas"] == "--alpha"
    assert len(set(by_field.values())) == len(by_field)


def test_each_option_takes_one_kind_of_value():
    for option in EVOLVE_OPTIONS:
        kinds = [option.number is not None, option.choices is not None, option.integer, option.flag,
                 option.per_channel, option.file]
        assert sum(kinds) <= 1, option.field


def _within(bounds: Bounds, value) -> bool:
    above = bounds.low is None or (value > bounds.low if bounds.low_open else value >= bounds.low)
    below = bounds.high is None or (value < bounds.high if bounds.high_open else value <= bounds.high)
    return isinstance(value, bounds.kind) and above and below


def test_defaults_are_values_the_options_accept():
    defaults = {f.name: f.default for f in setting_fields() if f.default is not MISSING}
    for option in EVOLVE_OPTIONS:
        default = defaults[option.field]
        if default is None:
            continue
        if option.flag:
            assert default is False, option.field
        elif option.choices is not None:
            assert default in option.choices, option.field
        elif isinstance(option.number, Bounds):
            assert _within(option.number, default), option.field
        elif option.number is not None:
            assert len(default) == len(option.number)
            assert all(_within(b, v) for b, v in zip(option.number, default, strict=True)), option.field


def test_the_choices_are_the_ones_the_configuration_accepts():
    """Every choice an option offers passes EvolveConfig's check (with what it needs beside it)."""
    for option in EVOLVE_OPTIONS:
        for choice in option.choices or ():
            EvolveConfig(**{option.field: choice}, bench="ort").resolved()
