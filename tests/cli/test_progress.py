from jetsynth.cli.progress import MemberClock, PlainObserver, StepProgress, clock, make_console
from tests.member_records import member as member_record

RECORD = member_record(generation=2, member=0, accuracy=0.9, val_accuracy=0.91, synapses=123456,
                       synaptic_efficiency=2.0, clusters=1000, cluster_efficiency=1.5,
                       train_seconds=12.0, fps=4321.0)


class FakeTime:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_clock():
    assert clock(None) == "?" and clock(0) == "0:00:00" and clock(3725.4) == "1:02:05"


def test_member_eta_counts_offspring_once_one_is_done():
    now = FakeTime()
    members = MemberClock(now)
    assert members.eta(3) is None
    members.member_started()
    now.t = 100.0  # the ancestor: 100 s
    members.member_finished("g01-m00")
    assert members.eta(3) == 300.0
    members.member_started()
    now.t = 120.0  # an offspring: 20 s
    members.member_finished("g02-m00")
    assert members.eta(3) == 60.0


def test_plain_observer_prints_one_line_records():
    now = FakeTime()
    lines = []
    observer = PlainObserver(lines.append, now, every=10.0)
    observer.run_started("runs/x", 2, 5)
    assert lines == ["run directory: runs/x", "resuming: 2 of 5 members done"]
    observer.member_started("g02-m00")
    for step in range(1, 101):
        now.t = step * 0.5
        observer.step(step, 100)
    steps = [line for line in lines if "step" in line]
    assert steps[0] == "training g02-m00: step 1/100 (1 %), elapsed 0:00:00, eta 0:00:50"
    assert steps[-1].startswith("training g02-m00: step 100/100 (100 %)")
    assert len(steps) == 2 + 50 // 10 - 1  # the first, one every 10 s, the last
    observer.member_finished(RECORD)
    assert lines[-2] == ("g02-m00: accuracy 0.9000 (validation 0.9100), 123,456 synapses (2.00×), "
                         "1,000 clusters (1.50×), 12.0 s, 4,321 FPS")
    assert lines[-1] == "members 3/5, elapsed 0:00:50, eta 0:01:40"


def test_a_fresh_run_does_not_say_resuming():
    lines = []
    PlainObserver(lines.append).run_started("runs/x", 0, 5)
    assert lines == ["run directory: runs/x"]


def test_console_of_a_pipe_does_not_wrap(capsys):
    console = make_console()  # pytest's stdout is not a terminal
    console.print("x" * 300)
    assert capsys.readouterr().out.strip() == "x" * 300


def test_step_progress_off_a_terminal_prints_records(capsys):
    with StepProgress("fine-tuning 2 epochs") as progress:
        progress(1, 4)
        progress(4, 4)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("fine-tuning 2 epochs: step 1/4 (25 %)")
    assert err[-1].startswith("fine-tuning 2 epochs: step 4/4 (100 %)")


def test_inactive_step_progress_prints_nothing(capsys):
    with StepProgress("fine-tuning 0 epochs", active=False) as progress:
        progress(1, 1)
    assert capsys.readouterr().err == ""


def test_progress_shows_every_member_in_flight():
    """With --executor ray several members train at once: each has its own line until it is
    recorded."""
    import io

    from rich.console import Console

    from jetsynth.cli.progress import RichObserver

    stream = io.StringIO()
    record = member_record(id="g02-m01", generation=2, member=1, accuracy=0.9, synapses=10,
                           synaptic_efficiency=2.0, clusters=5, cluster_efficiency=1.5,
                           train_seconds=1.0)
    with RichObserver(Console(file=stream, width=120)) as observer:
        observer.run_started("RUN", 1, 4)
        for member in ("g02-m00", "g02-m01", "g02-m02"):
            observer.member_started(member)
        descriptions = [t.description for t in observer.progress.tasks]
        assert descriptions == ["members", "training g02-m00", "training g02-m01", "training g02-m02"]
        observer.member_finished(record)
        descriptions = [t.description for t in observer.progress.tasks]
        assert descriptions[0].startswith("members (eta ")
        assert descriptions[1:] == ["training g02-m00", "training g02-m02"]
        observer.member_timing("g02-m00")  # handed to a board of a timing pool
        assert [t.description for t in observer.progress.tasks][1] == "timing g02-m00"
    assert "g02-m01: accuracy 0.9000" in stream.getvalue()
