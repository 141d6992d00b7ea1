import pytest

from jetsynth.errors import JetsynthError
from jetsynth.run.config import EvolveConfig


def test_pressure_on_defaults_to_macs_and_to_seed_001s_synapses_under_a_preset():
    assert EvolveConfig().resolved().synthesis(1).pressure_on == "macs"
    assert EvolveConfig(target_fps=100, bench="ort").resolved().pressure_on == "macs"
    assert EvolveConfig(preset="seed001").resolved().synthesis(1).pressure_on == "synapses"
    assert EvolveConfig(preset="seed001", target_fps=100, bench="ort").resolved().pressure_on == "synapses"
    assert EvolveConfig(pressure_on="macs").resolved().synthesis(1).pressure_on == "macs"


def test_unknown_pressure_on_is_a_clear_error():
    with pytest.raises(JetsynthError, match="--pressure-on must be one of synapses, macs, latency"):
        EvolveConfig(pressure_on="flops").resolved()


def test_latency_pressure_needs_a_bench_target():
    with pytest.raises(JetsynthError, match="--pressure-on latency .* add --bench"):
        EvolveConfig(pressure_on="latency").resolved()


def test_screen_defaults_to_eight_draws_and_to_one_under_a_preset_without_a_target():
    assert EvolveConfig().resolved().screen == 8
    assert EvolveConfig(preset="seed001").resolved().screen == 1
    assert EvolveConfig(preset="seed001", target_fps=100, bench="ort").resolved().screen == 8
    assert EvolveConfig(target_fps=100, bench="ort", screen=2).resolved().screen == 2
    with pytest.raises(JetsynthError, match="--screen must be at least 1"):
        EvolveConfig(screen=0).resolved()


def test_a_run_from_before_screening_resumes_with_one_draw(tmp_path):
    import json

    from jetsynth.run.rundir import RunDirectory

    stored = {"format": 1, "config": {"data": "digits", "target_fps": 100.0, "bench": "ort"},
              "versions": {"jetsynth": "0.1.0"}}
    (tmp_path / "config.json").write_text(json.dumps(stored))
    assert RunDirectory(tmp_path).stored_config().resolved().screen == 1


def test_timing_seconds_by_hand():
    assert EvolveConfig().timing_seconds() == 0.0  # nothing timed without --bench
    # 1 + 5 × 4 = 21 members, every 2nd timed with the ancestor: 11 × 5 trials × 0.5 s
    config = EvolveConfig(bench="ort", generations=6, population=4, measure_every=2)
    assert config.timing_seconds() == 11 * 5 * 0.5


# What `EvolveConfig(**mode).resolved()` gave before the user-first defaults (the seed settings),
# written out by hand: every preset must give exactly these.
_TODAY = {"generations": 6, "population": 1, "screen": 1, "parents": 1, "cluster": "kernel",
          "keep": 0.8, "balance": 0.5, "truncation": 0.1, "cluster_pressure": 0.5, "epochs": 5,
          "ancestor_epochs": 20, "selection": "random", "pressure": "fixed", "max_drop": None,
          "accuracy_floor": None, "patience": None, "pressure_on": "synapses", "mating": "sum",
          "structure": "intersection", "alignment": "tag", "precision": "fp32", "bench": "none",
          "target_fps": None, "channel_multiple": 1}
# What a seed paper states itself, where it differs from the settings of before.
_PAPER = {"seed000": {"generations": 10, "cluster": "filter"}}
_MODES = [
    ({}, {}),
    ({"max_drop": 0.01}, {"keep": 0.5, "pressure": "adaptive", "max_drop": 0.01}),
    ({"target_fps": 100.0, "bench": "ort"},
     {"screen": 8, "cluster": "filter", "balance": 0.0, "cluster_pressure": 0.9, "selection": "fps",
      "pressure": "adaptive", "bench": "ort", "target_fps": 100.0}),
]


@pytest.mark.parametrize("preset", ["seed000", "seed001", "seed002", "seed004"])
@pytest.mark.parametrize(("mode", "changed"), _MODES)
def test_each_preset_resolves_to_the_seed_settings_of_before(preset, mode, changed):
    from dataclasses import asdict

    resolved = asdict(EvolveConfig(preset=preset, **mode).resolved())
    assert {key: resolved[key] for key in _TODAY} == {**_TODAY, **_PAPER.get(preset, {}), **changed}
    assert resolved["preset"] == preset


def test_seed000s_preset_has_the_papers_ten_generations_and_filter_clusters():
    """Seed 000, Fig. 2: generations 1 (the ancestor) to 10; §3.1: "each filter (i.e.,
    collection of kernels) was considered as a synaptic cluster"."""
    config = EvolveConfig(preset="seed000", population=8, parents=5).resolved()
    assert (config.generations, config.cluster, config.selection, config.mating,
            config.structure) == (10, "filter", "random", "sum", "intersection")
    assert EvolveConfig(preset="seed000", generations=4, cluster="kernel").resolved().cluster == "kernel"


def test_user_first_defaults_shrink_until_the_floor_and_stop_by_themselves():
    config = EvolveConfig().resolved()
    assert (config.cluster, config.pressure, config.pressure_on, config.max_drop) == (
        "filter", "adaptive", "macs", 0.01)
    assert (config.screen, config.patience, config.generations, config.channel_multiple) == (8, 2, 8, 8)
    assert EvolveConfig(data="mnist:DIR").with_policies().generations == 30
    assert config.synthesis(1).channel_multiple == 8
    assert EvolveConfig(accuracy_floor=0.9).resolved().max_drop is None
    assert EvolveConfig(channel_multiple=16).resolved().synthesis(1).channel_multiple == 16


def test_a_bench_target_with_a_latency_model_puts_the_pressure_on_latency(tmp_path):
    model = tmp_path / "model.json"
    model.write_text("{}")
    config = EvolveConfig(bench="ort", latency_model=str(model)).with_policies()
    assert config.pressure_on == "latency"
    assert EvolveConfig(bench="ort", latency_model="none").with_policies().pressure_on == "macs"


@pytest.mark.parametrize(("values", "message"), [
    ({"preset": "seed003"}, "--preset must be one of seed000, seed001, seed002, seed004"),
    ({"channel_multiple": 0}, "--channel-multiple must be at least 1"),
])
def test_bad_presets_and_multiples_are_clear_errors(values, message):
    with pytest.raises(JetsynthError, match=message):
        EvolveConfig(**values).resolved()


def test_a_run_from_before_presets_resumes_under_the_seed_settings(tmp_path):
    import json

    from jetsynth.run.rundir import RunDirectory

    stored = {"format": 1, "config": {"data": "digits", "generations": 4},
              "versions": {"jetsynth": "0.1.0"}}
    (tmp_path / "config.json").write_text(json.dumps(stored))
    config = RunDirectory(tmp_path).stored_config().resolved()
    assert (config.cluster, config.channel_multiple, config.patience, config.generations) == (
        "kernel", 1, None, 4)


def _board(monkeypatch, tmp_path, multiple: int | None):
    """A hand-made profile 'tiny' that declares `multiple`, and an inventory device 'lab' of it."""
    from jetsynth.devices.inventory import Device, add_device
    from jetsynth.devices.profiles import PROFILES, DeviceProfile

    monkeypatch.setitem(PROFILES, "tiny", DeviceProfile("tiny", "Tiny board", "none", (1, 0), False, False,
                                                        False, 8, "0", "3.10", channel_multiple=multiple))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    add_device(Device(name="lab", host="127.0.0.1", profile="tiny"))


def test_a_bench_device_whose_profile_declares_a_multiple_evolves_in_its_groups(monkeypatch, tmp_path):
    _board(monkeypatch, tmp_path, 4)
    assert EvolveConfig(bench="lab").resolved().synthesis(1).channel_multiple == 4
    multiple, why = EvolveConfig(bench="lab").channel_multiple_choice()
    assert (multiple, why) == (4, "the tiny profile (Tiny board) of --bench lab; --channel-multiple N "
                                  "overrides it")
    # the flag wins, a preset keeps exact widths, an onnxruntime backend has no profile
    assert EvolveConfig(bench="lab", channel_multiple=16).resolved().channel_multiple == 16
    assert EvolveConfig(bench="lab", channel_multiple=8).channel_multiple_choice() == (
        8, "as given (--channel-multiple)")
    assert EvolveConfig(bench="lab", preset="seed001").resolved().channel_multiple == 1
    assert EvolveConfig(bench="ort").channel_multiple_choice() == (
        8, "the default; --channel-multiple N changes it")


def test_a_profile_without_a_multiple_leaves_the_default(monkeypatch, tmp_path):
    _board(monkeypatch, tmp_path, None)
    assert EvolveConfig(bench="lab").resolved().channel_multiple == 8


def test_a_device_missing_from_the_inventory_is_refused_in_the_checks_words(monkeypatch, tmp_path):
    _board(monkeypatch, tmp_path, 4)
    with pytest.raises(JetsynthError, match="no device named 'elsewhere'"):
        EvolveConfig(bench="elsewhere").resolved()
