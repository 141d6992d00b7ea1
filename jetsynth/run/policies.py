"""The evolution settings a run leaves open (None), filled in by one rule declared here: a named
policy ('user-first', or 'seed' for every `--preset`) and the run's mode (a speed target, an
accuracy floor, or neither) pick one row of `POLICIES`; a setting the user gave is never
changed.

User-first (no preset): shrink until the floor. The floor is one point (max_drop 0.01) unless an
accuracy floor is given; adaptive pressure from keep 0.5; whole filters (only removed filters
make a dense network faster) with 0.9 of the pressure on clusters; the budget counted in
multiply-accumulates (or, when the bench target has a calibrated latency model, in its latency)
at balance 0.5, so the expensive convolutions carry it; eight screened draws per member; channel
spaces in groups of 8; the run ends when `patience` 2 generations in a row gained nothing at the
floor, within 30 generations (8 on the built-in digits). With a speed target, the closed loop
(balance 0, fps selection, keep 0.8).

Seed (any preset): the seed papers' settings, exactly the defaults before the user-first ones.
With a speed target, the closed loop: whole filters, 0.9 of the pressure on clusters, balance 0,
fps selection, adaptive pressure from keep 0.8, eight screened draws. With an accuracy floor (and
no target), the pressure adapts to accuracy from a stronger keep 0.5. Otherwise seed 001's
kernels with balance 0.5 and cluster pressure 0.5, seed 000's random mates, fixed pressure at
keep 0.8, on synapses, exact widths, 6 generations; what a paper states itself overrides these
(`PAPER_SETTINGS`: seed 000's 10 generations and filter clusters)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from jetsynth.run.settings import EvolutionSettings

COST = "cost"
"""`pressure_on` of the policy: 'latency' when the bench target has a calibrated latency model,
else 'macs' (decided by `EvolveConfig`, which knows the bench)."""
CAPPED = -1
"""`generations` of the policy: at most `GENERATIONS_CAP` for the dataset (the run ends by itself
through `patience`)."""
GENERATIONS_CAP = {"digits": 8}
FALLBACK_GENERATIONS_CAP = 30
"""Without a preset a run ends by itself (patience at the floor); this only bounds it (on the
built-in digits, 8: the quick start stays under 2 minutes)."""
DEFAULT_CHANNEL_MULTIPLE = 8
"""Channel groups where neither the user, a preset nor the --bench device's profile sets them."""
DEFAULT_MAX_DROP = 0.01
"""The floor where none is given: one point under the ancestor's validation accuracy."""
MODES = ("open", "floor", "target")
"""What the run aims at: nothing given, an accuracy floor (max_drop or accuracy_floor), or a
speed (target_fps, which wins over a floor)."""


@dataclass(frozen=True)
class Policy:
    """The values of the evolution settings left open, in one policy and mode (None: left open)."""

    generations: int
    cluster: str
    balance: float
    cluster_pressure: float
    selection: str
    pressure: str
    keep: float
    pressure_on: str
    screen: int
    channel_multiple: int
    max_drop: float | None
    patience: int | None


_USER = Policy(generations=CAPPED, cluster="filter", balance=0.5, cluster_pressure=0.9,
               selection="random", pressure="adaptive", keep=0.5, pressure_on=COST, screen=8,
               channel_multiple=DEFAULT_CHANNEL_MULTIPLE, max_drop=DEFAULT_MAX_DROP, patience=2)
_SEED = Policy(generations=6, cluster="kernel", balance=0.5, cluster_pressure=0.5,
               selection="random", pressure="fixed", keep=0.8, pressure_on="synapses", screen=1,
               channel_multiple=1, max_drop=None, patience=None)
_CLOSED_LOOP = {"balance": 0.0, "selection": "fps", "keep": 0.8}

POLICIES: dict[tuple[str, str], Policy] = {
    ("user-first", "open"): _USER,
    ("user-first", "floor"): _USER,
    ("user-first", "target"): replace(_USER, **_CLOSED_LOOP),
    ("seed", "open"): _SEED,
    ("seed", "floor"): replace(_SEED, pressure="adaptive", keep=0.5),
    ("seed", "target"): replace(_SEED, cluster="filter", cluster_pressure=0.9, pressure="adaptive",
                                screen=8, **_CLOSED_LOOP),
}
"""(policy, mode) → the values of the settings left open."""
PAPER_SETTINGS: dict[str, dict[str, object]] = {"seed000": {"generations": 10, "cluster": "filter"}}
"""What a seed paper states itself where the shared seed policy differs, over every mode: seed
000 (Fig. 2) runs to generation 10 and takes each filter as a synaptic cluster (section 3.1)."""


def policy_name(evolution: EvolutionSettings) -> str:
    return "user-first" if evolution.preset is None else "seed"


def mode(evolution: EvolutionSettings, target_fps: float | None) -> str:
    if target_fps is not None:
        return "target"
    if evolution.max_drop is not None or evolution.accuracy_floor is not None:
        return "floor"
    return "open"


def with_policy(evolution: EvolutionSettings, target_fps: float | None, data_kind: str,
                cost_pressure: str) -> EvolutionSettings:
    """`evolution` with every open setting of `POLICIES` filled in. `data_kind`: the dataset's
    kind ('digits', 'mnist', ...) that caps the generations; `cost_pressure`: what `COST` means
    for this run's bench. max_drop is filled only when no accuracy floor was given either."""
    policy = POLICIES[policy_name(evolution), mode(evolution, target_fps)]
    policy = replace(policy, **PAPER_SETTINGS.get(evolution.preset or "", {}))
    filled = {}
    for f in fields(Policy):
        if getattr(evolution, f.name) is not None:
            continue
        value = getattr(policy, f.name)
        if f.name == "generations" and value == CAPPED:
            value = GENERATIONS_CAP.get(data_kind, FALLBACK_GENERATIONS_CAP)
        elif f.name == "pressure_on" and value == COST:
            value = cost_pressure
        elif f.name == "max_drop" and evolution.accuracy_floor is not None:
            continue
        filled[f.name] = value
    return replace(evolution, **filled)
