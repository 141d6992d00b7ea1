import json
from dataclasses import replace

from jetsynth.devices.inventory import add_device
from jetsynth.run import measurement
from jetsynth.run.config import EvolveConfig
from jetsynth.run.evolve import evolve
from jetsynth.run.rundir import RunDirectory

TIMING = ("fps", "fps_iqr", "fps_predicted", "train_seconds")
BENCH_TIMING = ("backend", "latency_ms", "build_seconds", "engine_bytes", "power",
                "onnx_bytes")  # the timed file names its run directory, as the shipped one does


def _without_timing(record) -> dict:
    kept = {k: v for k, v in record.to_json().items() if k not in TIMING}
    kept["bench"] = {k: v for k, v in kept["bench"].items() if k not in BENCH_TIMING}
    return kept


def test_a_pool_of_two_devices_times_a_generation_as_one_device_does(local_device, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    add_device(local_device)
    add_device(replace(local_device, name="local2"))  # the same sshd: a pool of two boards
    config = EvolveConfig(data="digits", subset=0.2, generations=2, population=3, ancestor_epochs=1,
                          epochs=1, keep=0.6, cluster="filter", precision="fp16", bench="local",
                          bench_seconds=0.05, preset="seed001")
    one = evolve(config, tmp_path / "one")
    pooled = evolve(replace(config, bench_pool=("local2",)), tmp_path / "pool")

    assert [r.bench.source for r in pooled] == ["measured"] * 4  # four architectures
    boards = {r.bench.backend.split(":")[0] for r in pooled if r.bench.source == "measured"}
    assert boards == {"local", "local2"}
    assert all(r.fps > 0 for r in pooled)
    assert [_without_timing(r) for r in pooled] == [_without_timing(r) for r in one]
    on_disk = sorted(RunDirectory(tmp_path / "pool").records(), key=lambda r: r.id)
    assert on_disk == sorted(pooled, key=lambda r: r.id)

    # resumed with another second board, one that is down: its members move to the first
    from sshd_server import free_port

    monkeypatch.setattr(measurement, "RETRY_PAUSE_SECONDS", 0.0)
    add_device(replace(local_device, name="down", port=free_port()))
    more = evolve(replace(config, generations=3, bench_pool=("down",)), tmp_path / "pool", resume=True)
    assert [r.bench.backend for r in more[4:]] == ["local:onnxruntime"] * 3
    assert RunDirectory(tmp_path / "pool").stored_config().bench_pool == ("down",)
    events = [json.loads(line) for line in (tmp_path / "pool" / "events.jsonl").read_text().splitlines()]
    assert {e["board"] for e in events if e["event"] == "bench_board_failed"} == {"down"}
