import pytest

from jetsynth.agent.timing import nearest_rank, summarize


def test_nearest_rank_percentiles_by_hand():
    values = [float(v) for v in range(1, 11)]
    assert nearest_rank(values, 50) == 5.0
    assert nearest_rank(values, 90) == 9.0
    assert nearest_rank(values, 99) == 10.0
    assert nearest_rank(values, 0) == 1.0
    assert nearest_rank([3.0], 99) == 3.0


def test_summarize_follows_trtexec_definitions_by_hand():
    stats = summarize([4.0, 1.0, 3.0, 2.0], wall_seconds=0.5, batch=8)
    assert stats["queries"] == 4
    assert stats["throughput_qps"] == 8.0
    assert stats["fps"] == 64.0
    assert stats["latency_ms"] == {"mean": 2.5, "min": 1.0, "p50": 2.0, "p90": 4.0, "p99": 4.0, "max": 4.0}


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -1.0])
def test_timing_refuses_a_duration_it_would_never_reach(seconds):
    from jetsynth.agent.errors import AgentError
    from jetsynth.agent.timing import time_queries

    with pytest.raises(AgentError, match="must be finite and not negative"):
        time_queries(lambda: None, 0.0, seconds, 1)
