import pytest

from jetsynth.core.stopping import stale_generations
from jetsynth.errors import JetsynthError
from jetsynth.run.config import EvolveConfig
from jetsynth.run.evolve import evolve
from jetsynth.storage import read_jsonl
from tests.member_records import member


def _record(generation, val, synapses, macs, fps=None, index=0):
    return member(generation=generation, member=index, val_accuracy=val, accuracy=val,
                  synapses=synapses, macs=macs, fps=fps)


def test_stale_generations_by_hand():
    records = [
        _record(1, 0.99, 1000, 100),
        _record(2, 0.985, 600, 90),     # smaller at the floor: improves
        _record(3, 0.97, 100, 10),      # below the floor 0.98: does not count
        _record(3, 0.99, 700, 95),      # larger than generation 2's: no gain
        _record(4, 0.981, 650, 85),     # fewer MACs than any before: improves
        _record(5, 0.99, 650, 85),      # ties improve nothing
        _record(6, 0.99, 700, 90, fps=50.0),  # the first speed measured: improves
    ]
    assert stale_generations(records[:2], 0.98) == 0
    assert stale_generations(records[:4], 0.98) == 1
    assert stale_generations(records[:5], 0.98) == 0
    assert stale_generations(records[:6], 0.98) == 1
    assert stale_generations(records, 0.98) == 0
    assert stale_generations(records, 0.995) == 6  # nothing ever kept the floor


def test_max_drop_turns_on_adaptive_pressure_from_keep_half():
    config = EvolveConfig(max_drop=0.02, preset="seed001").with_policies()
    assert (config.pressure, config.keep) == ("adaptive", 0.5)
    assert config.floor(0.99) == pytest.approx(0.97)
    assert EvolveConfig(accuracy_floor=0.9, preset="seed001").with_policies().pressure == "adaptive"
    plain = EvolveConfig(preset="seed001").with_policies()
    assert (plain.pressure, plain.keep, plain.floor(0.99)) == ("fixed", 0.8, pytest.approx(0.98))
    assert EvolveConfig(max_drop=0.02, keep=0.7).with_policies().keep == 0.7
    assert EvolveConfig(pressure="adaptive", preset="seed001").with_policies().keep == 0.8
    default = EvolveConfig().with_policies()  # the user-first defaults shrink until one point
    assert (default.pressure, default.keep, default.floor(0.99)) == ("adaptive", 0.5, pytest.approx(0.98))


@pytest.mark.parametrize(("options", "message"), [
    ({"max_drop": 0.01, "accuracy_floor": 0.9}, "not both"),
    ({"max_drop": 1.5}, "--max-drop"),
    ({"patience": 0}, "--patience"),
])
def test_nonsense_floor_options_are_refused(options, message):
    with pytest.raises(JetsynthError, match=message):
        EvolveConfig(**options).resolved()


def test_patience_stops_a_run_that_gains_nothing(tmp_path):
    """At keep 1 no offspring is smaller than its parent, so every generation after the
    ancestor is stale: with --patience 2 the run ends after generation 3 of 6."""
    config = EvolveConfig(data="digits", subset=0.3, generations=6, keep=1.0, pressure="fixed",
                          ancestor_epochs=0, epochs=0, patience=2, seed=1)
    records = evolve(config, tmp_path / "run")
    assert [r.generation for r in records] == [1, 2, 3]
    events = read_jsonl(tmp_path / "run" / "events.jsonl")
    stop = [e for e in events if e["event"] == "patience_stop"]
    assert len(stop) == 1 and stop[0]["stale_generations"] == 2 and stop[0]["ship"] == "g01-m00"
    assert events[-1]["event"] == "run_done"


def test_a_generation_below_the_floor_is_followed_by_a_retreat():
    from jetsynth.run.evolve import generation_keep, parent_pool

    config = EvolveConfig(max_drop=0.01).with_policies()
    records = [_record(1, 0.99, 1000, 100), _record(2, 0.985, 500, 50),
               _record(2, 0.983, 480, 48, index=1), _record(3, 0.97, 250, 25)]
    floor = 0.98
    pool, retreat = parent_pool(config, records, records[3:], floor)
    assert retreat == 2 and [r.id for r in pool] == ["g02-m00", "g02-m01"]
    keep, terms = generation_keep(config, pool, records[0], retreat=True)
    assert keep == pytest.approx(0.5 ** 0.25) and terms["accuracy_term"] == 0.25
    assert parent_pool(config, records, records[1:3], floor) == (records[1:3], None)
    fixed = EvolveConfig(preset="seed001").with_policies()
    assert parent_pool(fixed, records, records[3:], floor) == (records[3:], None)
