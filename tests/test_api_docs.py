"""docs/python-api.md's first example is run exactly as written, so the page stays true."""

import re
from pathlib import Path

import jetsynth

PAGE = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def first_example() -> str:
    text = PAGE.read_text()
    section = text[text.index("## A first run"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_first_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(first_example(), str(PAGE), "exec"), scope)
    run = scope["run"]
    assert isinstance(run, jetsynth.Run) and [m.id for m in run.members] == ["g01-m00", "g02-m00"]
    assert scope["best"].id in {"g01-m00", "g02-m00"}
    assert (tmp_path / "tiny.onnx").stat().st_size > 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed] == ["g01-m00", "g02-m00"]
    assert printed[0].endswith(" None")  # fps: not measured without a bench
