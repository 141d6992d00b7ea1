"""The `evolve` command's click options, built from the run layer's spec (`run/options.py`) and
`EvolveConfig`'s defaults, so that an option is written once: the command line adds only how a
value is parsed and its own options (where the run lives, whether to resume).

The spec is read when the command's options are first needed (parsing its arguments, its --help),
not when the command line starts: the run configuration imports torch, and `jetsynth --help`
starts without it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING
from typing import TYPE_CHECKING, Any

import click
from rich_click import RichCommand, RichOptionPanel

from jetsynth.cli.config_file import config_option
from jetsynth.cli.types import Number
from jetsynth.run.bounds import Bounds

if TYPE_CHECKING:
    from jetsynth.run.options import Option


def _floats(ctx, param, values) -> tuple[float, ...] | None:
    """A repeatable option whose values may also be comma lists ('--mean 0.5 --mean 0.4' or
    '--mean 0.5,0.4') as one tuple of floats; None when not given."""
    try:
        found = tuple(float(v) for text in values for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"numbers expected, one per channel, got {' '.join(values)}") from None
    return found or None


def _click_type(option: Option) -> Any:
    """The click type that parses `option`'s values; None: text."""
    if isinstance(option.number, Bounds):
        return Number.within(option.number)
    if option.number is not None:
        return tuple(Number.within(each) for each in option.number)
    if option.choices is not None:
        return click.Choice(option.choices)
    if option.integer:
        return int
    if option.file:
        return click.Path(dir_okay=False, resolve_path=option.resolve)
    return None


def click_option(option: Option, default: Any) -> click.Option:
    """The click option of one spec entry; `default` is the field's default in EvolveConfig (a
    flag's is False and a repeated option's the empty tuple, as click has them; a repeated
    option over a one-value field starts from that value)."""
    settings: dict[str, Any] = {"help": option.help}
    if option.flag:
        settings["is_flag"] = True
    elif option.per_channel:
        settings.update(type=str, multiple=True, callback=_floats)
    elif option.repeat:
        settings.update(type=_click_type(option), multiple=True)
        if default not in (None, ()):  # a field of one value that the option may repeat (--bench)
            settings.update(default=default if isinstance(default, tuple) else (default,),
                            show_default=True)
    else:
        settings.update(type=_click_type(option), default=default)
        if default is not None:
            settings["show_default"] = True
    return click.Option([option.option, option.field], **settings)


def evolve_params(own: Sequence[click.Parameter],
                  after: Mapping[str, Sequence[str]]) -> list[click.Parameter]:
    """Every evolve option in the spec's order, with the command's `own` options placed behind the
    field `after` names for them (as --help lists them)."""
    from jetsynth.run.options import EVOLVE_OPTIONS
    from jetsynth.run.settings import setting_fields

    unknown = set(after) - {option.field for option in EVOLVE_OPTIONS}
    if unknown:
        raise ValueError(f"no evolve option for {', '.join(sorted(unknown))}")
    by_name = {param.name: param for param in own}
    placed = [name for names in after.values() for name in names]
    if sorted(placed) != sorted(by_name):
        raise ValueError(f"place each of the command's own options once: {', '.join(sorted(by_name))}")
    default = {f.name: f.default for f in setting_fields() if f.default is not MISSING}
    params: list[click.Parameter] = []
    for option in EVOLVE_OPTIONS:
        params.append(click_option(option, default[option.field]))
        params.extend(by_name[name] for name in after.get(option.field, ()))
    return params


RUN_SECTION = "Run"
"""The section of `--help` holding the command's own options (where the run lives, resuming)."""


def evolve_sections() -> dict[str, list[str]]:
    """Section name → the evolve settings it holds, as `--help` and `--config` files group them."""
    from jetsynth.run.options import SECTIONS

    return {name: list(names) for name, names in SECTIONS}


class EvolveCommand(RichCommand):
    """A command taking every evolve option (`evolve_params`) and `--config FILE.toml`, built on
    first use and shown in `--help` in the sections of `run.options.SECTIONS`; `after` places the
    command's own options, by name, behind an evolve option's field."""

    def __init__(self, *args: Any, after: Mapping[str, Sequence[str]], **kwargs: Any) -> None:
        self._after = dict(after)
        self._built: list[click.Parameter] | None = None
        super().__init__(*args, **kwargs)

    @property
    def params(self) -> list[click.Parameter]:
        if self._built is None:
            sections = evolve_sections()
            self._built = [config_option(sections), *evolve_params(self._own, self._after)]
        return self._built

    @params.setter
    def params(self, own: list[click.Parameter]) -> None:
        self._own = list(own)
        self._built = None

    @property
    def panels(self) -> list[RichOptionPanel]:
        by_field = {p.name: p.opts[0] for p in self.params if isinstance(p, click.Option) and p.opts}
        panels = [RichOptionPanel(name, options=[by_field[f] for f in names if f in by_field])
                  for name, names in evolve_sections().items()]
        own = ["--config", *(p.opts[0] for p in self._own if isinstance(p, click.Option)), "--help"]
        return [*panels, RichOptionPanel(RUN_SECTION, options=own)]

    @panels.setter
    def panels(self, _given: list[RichOptionPanel]) -> None:
        """The sections come from the settings' own list, not from the caller."""
