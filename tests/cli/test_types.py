import click
import pytest

from jetsynth.cli.types import SECONDS, SEED, BadNumber, Number


def _option(kind):
    return click.Option(["--x"], type=kind)


@pytest.mark.parametrize(("kind", "text", "value"), [
    (Number(float, 0, 1), "0", 0.0),
    (Number(float, 0, 1), "1", 1.0),
    (Number(int, 1), "3", 3),
    (SEED, "4294967295", 4294967295),
    (SECONDS, "0.25", 0.25),
])
def test_accepts_values_within_bounds(kind, text, value):
    assert kind.convert(text, _option(kind), None) == value


@pytest.mark.parametrize(("kind", "text"), [
    (Number(float), "nan"), (Number(float), "inf"), (Number(float), "-inf"),
    (Number(float, 0, 1, high_open=True), "1"), (Number(float, 0, 1, low_open=True), "0"),
    (Number(int, 1), "0"), (Number(int), "1.5"), (SEED, "-1"), (SEED, "4294967296"),
    (SECONDS, "0"), (SECONDS, "1e9"),
])
def test_refuses_with_one_line_naming_the_option(kind, text):
    with pytest.raises(BadNumber) as caught:
        kind.convert(text, _option(kind), None)
    message = caught.value.format_message()
    assert message.startswith("--x must be ") and f"got {text!r}" in message and "\n" not in message


def test_bounds_in_words():
    assert Number(float, 0, 1, high_open=True).bounds() == "in [0, 1)"
    assert Number(int, 1).bounds() == ">= 1"
    assert Number(float, 0, low_open=True).bounds() == "> 0"
    assert Number(float).bounds() == ""


@pytest.mark.parametrize("text", ["\u0662", "\u0661\u0662", "\uff13", "1\u0660"])
def test_digits_of_other_scripts_are_refused(text):
    """int('٢') is 2 in Python; no option means it, so it is refused as not a number."""
    with pytest.raises(click.BadParameter, match="must be an integer"):
        Number(int, 0, 10).convert(text, None, None)
    with pytest.raises(click.BadParameter, match="must be a finite number"):
        Number(float, 0, 10).convert(text, None, None)
