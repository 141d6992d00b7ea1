"""One writer per run directory, and a config.json that is checked before it is used."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from jetsynth.errors import JetsynthError
from jetsynth.run.config import EvolveConfig
from jetsynth.run.rundir import CONFIG_FILE, LOCK_FILE, RunDirectory, load_records, open_run

ROOT = Path(__file__).resolve().parents[2]
CONFIG = EvolveConfig(data="digits", subset=0.3, generations=4, population=1, ancestor_epochs=1,
                      epochs=1, seed=3)
CLI_OPTIONS = ["--data", "digits", "--subset", "0.3", "--generations", "4", "--population", "1",
               "--ancestor-epochs", "1", "--epochs", "1", "--seed", "3"]
HOLDER = """
import sys, time
from pathlib import Path
from jetsynth.run.config import EvolveConfig
from jetsynth.run.rundir import open_run
config = EvolveConfig(data="digits", subset=0.3, generations=4, population=1, ancestor_epochs=1,
                      epochs=1, seed=3).resolved()
open_run(Path(sys.argv[1]), config, sys.argv[2] == "resume")
print("locked", flush=True)
time.sleep(600)
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}


def _jetsynth(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jetsynth", *args], capture_output=True, text=True,
                          env=_env(), timeout=300)


@pytest.fixture
def holder(tmp_path):
    """A process that opened tmp_path/run as its writer and sleeps; killed at the end."""
    processes = []

    def start(mode: str = "new") -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "run"), mode],
                                   stdout=subprocess.PIPE, text=True, env=_env())
        processes.append(process)
        assert process.stdout.readline().strip() == "locked"
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()


def test_a_second_writer_is_refused_while_the_first_holds_the_run(tmp_path, holder):
    first = holder()
    with pytest.raises(JetsynthError, match=f"another jetsynth process \\(pid {first.pid}\\)"):
        open_run(tmp_path / "run", CONFIG.resolved(), resume=True)
    done = _jetsynth("evolve", "--run-dir", str(tmp_path / "run"), "--resume", *CLI_OPTIONS)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'run'} is being written by another jetsynth process (pid {first.pid}); "
        "wait for it to end, or stop it, before resuming this run"]
    assert not (tmp_path / "run" / "members").exists()
    # readers need no lock
    config = RunDirectory(tmp_path / "run").stored_config()
    assert config.generations == 4


def test_a_killed_writer_leaves_no_stale_lock(tmp_path, holder):
    first = holder()
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (tmp_path / "run" / LOCK_FILE).exists()
    run = open_run(tmp_path / "run", CONFIG.resolved(), resume=True)
    try:
        with pytest.raises(JetsynthError, match="another jetsynth process"):
            open_run(tmp_path / "run", CONFIG.resolved(), resume=True)
    finally:
        run.release()
    open_run(tmp_path / "run", CONFIG.resolved(), resume=True).release()


def test_a_fresh_run_in_a_held_directory_is_refused(tmp_path, holder):
    holder()
    started = time.monotonic()
    with pytest.raises(JetsynthError, match="another jetsynth process"):
        open_run(tmp_path / "run", CONFIG.resolved(), resume=False)
    assert time.monotonic() - started < 5


def test_resume_cannot_drop_generations(tmp_path):
    open_run(tmp_path / "run", CONFIG.resolved(), resume=False).release()
    with pytest.raises(JetsynthError, match="runs to 4 generations; --resume can add generations"):
        open_run(tmp_path / "run", replace(CONFIG, generations=2).resolved(), resume=True)
    done = _jetsynth("evolve", "--run-dir", str(tmp_path / "run"), "--resume", "--generations", "2")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "give --generations 4 or more" in done.stderr
    stored = json.loads((tmp_path / "run" / CONFIG_FILE).read_text())
    assert stored["config"]["generations"] == 4
    open_run(tmp_path / "run", replace(CONFIG, generations=5).resolved(), resume=True).release()


def _rewrite(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(format=2), "in a format this jetsynth .* does not read"),
    (lambda d: d.update(config=[1, 2]), "in a format this jetsynth"),
    (lambda d: d["config"].update(wormholes=3), "settings this jetsynth does not know \\(wormholes\\)"),
    (lambda d: d["config"].update(population="two", keep="much"), "values of keep, population do not "
                                                                  "parse"),
    (lambda d: d["config"].update(overlap_band=[0.5]), "values of overlap_band do not parse"),
])
def test_a_config_from_another_version_is_refused_in_one_line(tmp_path, change, message):
    open_run(tmp_path / "run", CONFIG.resolved(), resume=False).release()
    path = tmp_path / "run" / CONFIG_FILE
    stored = json.loads(path.read_text())
    assert stored["format"] == 1 and stored["versions"]["jetsynth"]
    _rewrite(path, lambda d: d["versions"].update(jetsynth="9.9.9"))
    _rewrite(path, change)
    with pytest.raises(JetsynthError, match=message) as caught:
        RunDirectory(tmp_path / "run").stored_config()
    assert "9.9.9" in str(caught.value)
    with pytest.raises(JetsynthError, match=message):
        open_run(tmp_path / "run", CONFIG.resolved(), resume=True)
    with pytest.raises(JetsynthError, match=message):
        load_records(tmp_path / "run")
    done = _jetsynth("evolve", "--run-dir", str(tmp_path / "run"), "--resume")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1


def test_a_config_written_before_the_format_was_recorded_still_reads(tmp_path):
    open_run(tmp_path / "run", CONFIG.resolved(), resume=False).release()
    path = tmp_path / "run" / CONFIG_FILE
    _rewrite(path, lambda d: (d.pop("format"), d["config"].pop("pressure")))
    assert RunDirectory(tmp_path / "run").stored_config().pressure == "fixed"
    broken = tmp_path / "run" / CONFIG_FILE
    broken.write_text('{"config": {"data"')
    with pytest.raises(JetsynthError, match="cannot be read"):
        RunDirectory(tmp_path / "run").stored_config()


def test_resume_removes_the_temporary_files_of_interrupted_writes(tmp_path):
    open_run(tmp_path / "run", CONFIG.resolved(), resume=False).release()
    member = tmp_path / "run" / "members" / "g01-m00"
    member.mkdir(parents=True)
    partial = member / ".member.json.k1ll3d.tmp"
    partial.write_text('{"id": ')
    open_run(tmp_path / "run", CONFIG.resolved(), resume=True).release()
    assert not partial.exists()


def test_run_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        open_run(tmp_path / "run", CONFIG.resolved(), resume=False).release()
    finally:
        os.umask(old)
    assert (tmp_path / "run" / CONFIG_FILE).stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("damage", ["garbage member.json", "member folder a file"])
def test_resume_sets_a_damaged_member_aside_and_trains_it_again(tmp_path, damage):
    from jetsynth.run.evolve import Observer, evolve

    run = tmp_path / "run"
    config = replace(CONFIG, generations=3)
    first = {r.id: r for r in evolve(config, run)}
    member = run / "members" / "g02-m00"
    if damage == "garbage member.json":
        (member / "member.json").write_text("{{ not json")
    else:
        import shutil

        shutil.rmtree(member)
        member.write_text("a file where a member folder was")

    notices = []

    class Notes(Observer):
        def notice(self, text):
            notices.append(text)

    again = {r.id: r for r in evolve(config, run, resume=True, observer=Notes())}
    assert set(again) == set(first)
    assert again["g02-m00"].accuracy == first["g02-m00"].accuracy  # the same member again
    assert (run / "damaged" / "g02-m00").exists()  # the damaged one kept aside
    damaged = [n for n in notices if n.startswith("damaged")]
    assert len(damaged) == 1 and damaged[0].startswith("damaged member set aside, trained again: g02-m00")
    assert [r.id for r in RunDirectory(run).records()] == ["g01-m00", "g02-m00", "g03-m00"]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("member_set_aside") == 1


def test_resume_stops_on_a_damaged_genome_naming_it(tmp_path):
    from jetsynth.run.evolve import evolve

    run = tmp_path / "run"
    config = replace(CONFIG, generations=2)
    evolve(config, run)
    (run / "members" / "g01-m00" / "genome.json").write_text("garbage")
    with pytest.raises(JetsynthError, match="g01-m00/genome.json is damaged"):
        evolve(replace(config, generations=3), run, resume=True)
    assert not (run / "damaged").exists()
