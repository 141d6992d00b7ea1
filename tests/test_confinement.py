"""A run directory from someone else writes nothing outside itself: a symbolic link planted at any
path jetsynth writes (the list taken from what a real evolve, report and similarity wrote) ends
the command with one line naming the link, and what the link points at is untouched."""

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_image_tree

from jetsynth.cli.main import cli
from jetsynth.data import imagefolder
from jetsynth.data.load import DataSpec, load_dataset
from jetsynth.storage import (
    UnsafePath,
    append_jsonl,
    atomic_write,
    confine,
    make_folder,
    remove_partial_writes,
    try_lock,
)

EVOLVE = ["--subset", "0.2", "--generations", "2", "--epochs", "0", "--ancestor-epochs", "0",
          "--population", "2", "--bench", "ort", "--bench-seconds", "0.01"]
VICTIM = "# the user's own file\n"


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A finished run (its similarity plot included) and every path under it, deepest first."""
    run = tmp_path_factory.mktemp("received") / "run"
    result = _run("evolve", "--run-dir", run, *EVOLVE)
    assert result.exit_code == 0, result.output
    result = _run("similarity", run, "-g", "2")
    assert result.exit_code == 0, result.output
    paths = sorted((p.relative_to(run) for p in run.rglob("*")), key=lambda p: (-len(p.parts), p))
    return run, paths


def _outside(tmp_path: Path, folder: bool) -> Path:
    if folder:
        target = tmp_path / "outside"
        target.mkdir()
        (target / "keep.txt").write_text(VICTIM)
    else:
        target = tmp_path / "authorized_keys"
        target.write_text(VICTIM)
    return target


def _untouched(target: Path) -> bool:
    if target.is_dir():
        return sorted(p.name for p in target.iterdir()) == ["keep.txt"] and \
            (target / "keep.txt").read_text() == VICTIM
    return target.read_text() == VICTIM


def _plant(run: Path, relative: Path, target: Path) -> Path:
    """Replace `relative` in `run` by a link to `target`; a member it belongs to is made
    unfinished (its member.json removed) so that resuming writes it again."""
    parts = relative.parts
    unfinished = parts[1] if parts[0] == "members" and len(parts) > 2 else "g02-m01"
    if parts[0] != "members" or len(parts) > 2:
        (run / "members" / unfinished / "member.json").unlink(missing_ok=True)
    path = run / relative
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    path.symlink_to(target)
    return path


def test_the_run_writes_what_the_list_holds(written):
    _, paths = written
    names = {str(p) for p in paths}
    # what the code writes, as found: the checks below cover each of these
    for expected in ("config.json", "events.jsonl", "run.lock", "members", "members/g01-m00",
                     "members/g02-m01/member.json", "members/g02-m01/genome.safetensors",
                     "members/g02-m01/model.onnx", "measurements.jsonl", "report",
                     "report/tables.md", "report/family_tree.png", "report/similarity_g02.png"):
        assert expected in names


def test_a_link_planted_at_any_written_path_changes_nothing_outside(written, tmp_path):
    run, paths = written
    missed = []
    for index, relative in enumerate(paths):
        copy = tmp_path / f"run{index}"
        shutil.copytree(run, copy, symlinks=True)
        (tmp_path / f"t{index}").mkdir()
        target = _outside(tmp_path / f"t{index}", (run / relative).is_dir())
        link = _plant(copy, relative, target)
        outputs = []
        for args in (["evolve", "--run-dir", copy, "--resume"], ["similarity", copy, "-g", "2"],
                     ["report", copy]):
            result = _run(*args)
            outputs.append(result.output)
            if result.exit_code != 0:
                break
        last = result.output.strip().splitlines()[-1] if result.output.strip() else ""
        if relative.name == "member.json":  # read, found damaged: set aside, or one line naming it
            handled = (result.exit_code == 0 and any(
                p.is_symlink() for p in (copy / "damaged").rglob("member.json"))) or (
                result.exit_code == 2 and last.startswith("error: ") and str(link) in last)
        else:
            handled = result.exit_code == 2 and last.startswith("error: ") and \
                str(link) in last and link.is_symlink()  # a link, or (read first) damaged
        if not (handled and _untouched(target)):
            missed.append((str(relative), result.exit_code, last or outputs))
    assert not missed, "\n".join(map(str, missed))


def test_a_new_run_beside_a_planted_lock_refuses(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    target = _outside(tmp_path, folder=False)
    (run / "run.lock").symlink_to(target)
    result = _run("evolve", "--run-dir", run, *EVOLVE[:8])
    assert result.exit_code == 2
    assert "run.lock is a symbolic link" in result.output.strip().splitlines()[-1]
    assert _untouched(target)


def test_a_damaged_member_is_not_moved_through_a_planted_damaged_folder(written, tmp_path):
    run, _ = written
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    (copy / "members" / "g02-m01" / "member.json").write_text("{not json")
    target = _outside(tmp_path, folder=True)
    (copy / "damaged").symlink_to(target)
    result = _run("evolve", "--run-dir", copy, "--resume")
    assert result.exit_code == 2
    assert f"{copy / 'damaged'} is a symbolic link" in result.output
    assert _untouched(target)
    assert (copy / "members" / "g02-m01").is_dir()


@pytest.mark.parametrize("name", ["devices.toml", "devices.toml.lock"])
def test_a_link_beside_the_inventory_is_refused(tmp_path, monkeypatch, name):
    config = tmp_path / "config"
    (config / "jetsynth").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    target = _outside(tmp_path, folder=False)
    (config / "jetsynth" / name).symlink_to(target)
    result = _run("devices", "add", "tx1", "--host", "ubuntu@10.0.0.5")
    assert result.exit_code == 2
    assert f"{name} is a symbolic link" in result.output
    assert _untouched(target)


def test_a_link_in_the_folder_cache_is_refused(tmp_path):
    root = write_image_tree(tmp_path / "pets", per_class=3)
    load_dataset(DataSpec.parse(f"folder:{root}"))
    entries = [p for p in imagefolder.cache_root().iterdir() if p.is_dir()]
    target = _outside(tmp_path, folder=True)
    for entry in entries:
        shutil.rmtree(entry)
        entry.symlink_to(target)
    with pytest.raises(UnsafePath, match="is a symbolic link"):
        load_dataset(DataSpec.parse(f"folder:{root}"))
    assert _untouched(target)


# ---- the helper itself, on hand-made trees


def test_confine_accepts_real_folders_and_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("x")
    assert confine(tmp_path / "a" / "b" / "f", tmp_path) == tmp_path / "a" / "b" / "f"
    assert confine(tmp_path / "a" / "new" / "deeper" / "f", tmp_path)
    assert make_folder(tmp_path / "a" / "c" / "d", tmp_path).is_dir()


@pytest.mark.parametrize("where", ["file", "middle"])
def test_confine_refuses_links_on_the_way(tmp_path, where):
    outside = _outside(tmp_path, folder=where == "middle")
    root = tmp_path / "run"
    (root / "a").mkdir(parents=True)
    if where == "file":
        (root / "a" / "f").symlink_to(outside)
    else:
        os.rmdir(root / "a")
        (root / "a").symlink_to(outside)
    with pytest.raises(UnsafePath, match=r"run/a.* is a symbolic link \(to "):
        atomic_write(root / "a" / "f", lambda tmp: tmp.write_text("sender's"), root)
    with pytest.raises(UnsafePath):
        append_jsonl(root / "a" / "f", {"x": 1}, root=root)
    with pytest.raises(UnsafePath):
        try_lock(root / "a" / "f", root=root)
    assert _untouched(outside)


def test_confine_refuses_dotdot_fifos_and_devices(tmp_path):
    with pytest.raises(UnsafePath, match="leaves"):
        confine(tmp_path / "a" / ".." / ".." / "etc", tmp_path)
    with pytest.raises(UnsafePath, match="outside"):
        confine(Path("/etc/passwd"), tmp_path)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UnsafePath, match="is a FIFO"):
        append_jsonl(tmp_path / "fifo", {"x": 1})
    with pytest.raises(UnsafePath, match="is a device node"):
        atomic_write(Path("/dev/null"), lambda tmp: tmp.write_text("x"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(UnsafePath, match="is a folder"):
        try_lock(tmp_path / "folder")


def test_partial_writes_are_not_removed_through_a_linked_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".x.1.tmp").write_text(VICTIM)
    run = tmp_path / "run"
    run.mkdir()
    (run / "members").symlink_to(outside)
    (run / ".config.json.2.tmp").write_text("partial")
    assert remove_partial_writes(run) == [run / ".config.json.2.tmp"]
    assert (outside / ".x.1.tmp").read_text() == VICTIM
