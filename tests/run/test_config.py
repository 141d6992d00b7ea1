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
