import pytest

from jetsynth.errors import JetsynthError
from jetsynth.run.config import EvolveConfig


def test_pressure_on_defaults_to_seed_001s_synapses_and_reaches_synthesis():
    assert EvolveConfig().resolved().synthesis(1).pressure_on == "synapses"
    assert EvolveConfig(target_fps=100, bench="ort").resolved().pressure_on == "synapses"
    assert EvolveConfig(pressure_on="macs").resolved().synthesis(1).pressure_on == "macs"


def test_unknown_pressure_on_is_a_clear_error():
    with pytest.raises(JetsynthError, match="--pressure-on must be one of synapses, macs, latency"):
        EvolveConfig(pressure_on="flops").resolved()


def test_latency_pressure_needs_a_bench_target():
    with pytest.raises(JetsynthError, match="--pressure-on latency .* add --bench"):
        EvolveConfig(pressure_on="latency").resolved()


def test_screen_defaults_to_one_draw_and_to_eight_with_a_target():
    assert EvolveConfig().resolved().screen == 1
    assert EvolveConfig(target_fps=100, bench="ort").resolved().screen == 8
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
