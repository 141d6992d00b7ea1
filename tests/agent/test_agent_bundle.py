import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jetsynth.agent import bundle as bundler
from jetsynth.agent.bundle import MODULES, BundleError, bundle
from jetsynth.devices.deploy import agent_source

PACKAGE = Path(bundler.__file__).parent


def test_agent_is_python_36_compatible(agent_file):
    """The shipped file and every module it is joined from (and the bundler, which the Docker
    images run on the device's Python) need nothing newer than Python 3.6."""
    vermin = shutil.which("vermin")
    if vermin is None:
        pytest.skip("vermin is not installed (pip install -e '.[test]' brings it)")
    modules = [str(PACKAGE / f"{name}.py") for name in (*MODULES, "bundle")]
    done = subprocess.run([vermin, "-t=3.6-", "--no-tips", "--violations", "--eval-annotations",
                           str(agent_file), *modules], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_agent_imports_nothing_from_jetsynth(agent_file):
    text = agent_file.read_text()
    assert "from ." not in text and "import jetsynth" not in text and "from jetsynth" not in text


def test_every_module_of_the_package_is_shipped_or_host_only():
    shipped = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "bundle"}
    assert shipped == set(MODULES)


def test_the_bundled_file_runs_as_a_program(agent_file):
    done = subprocess.run([sys.executable, str(agent_file), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "usage: jetsynth_agent.py" in done.stdout
    assert "facts" in done.stdout and "run" in done.stdout
    assert agent_file.read_text().startswith("#!/usr/bin/env python3\n\"\"\"jetsynth device agent:")


def test_the_bundle_is_deterministic_and_is_what_deploy_ships(tmp_path):
    assert bundle() == bundle()
    assert agent_source() == bundle().encode()
    out = tmp_path / "jetsynth_agent.py"
    done = subprocess.run([sys.executable, str(PACKAGE / "bundle.py"), str(out)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(agent_source()).hexdigest()


def _copy_package(tmp_path, name, text):
    folder = tmp_path / "agent"
    shutil.copytree(PACKAGE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / f"{name}.py").write_text(text)
    return folder


@pytest.mark.parametrize("line, reason", [
    ("from .cli import main", "earlier module"),
    ("from . import timing", "earlier module"),
    ("from .errors import AgentError as Failure", "earlier module"),
    ("from jetsynth.errors import JetsynthError", "nothing from jetsynth"),
    ("from __future__ import annotations", "__future__"),
])
def test_the_bundler_refuses_imports_it_cannot_join(tmp_path, line, reason):
    text = (PACKAGE / "power.py").read_text().replace("from .lifetime import start_child",
                                                      f"from .lifetime import start_child\n{line}")
    with pytest.raises(BundleError, match=reason):
        bundle(_copy_package(tmp_path, "power", text))


def test_the_bundler_refuses_a_name_two_modules_define(tmp_path):
    text = (PACKAGE / "power.py").read_text() + "\n\ndef nearest_rank():\n    pass\n"
    with pytest.raises(BundleError, match="nearest_rank is defined in both timing.py and power.py"):
        bundle(_copy_package(tmp_path, "power", text))


def _python36():
    """A working Python 3.6 interpreter here (on PATH or under pyenv), else None."""
    candidates = [shutil.which("python3.6"), *sorted(glob.glob(os.path.expanduser(
        "~/.pyenv/versions/3.6*/bin/python3.6")))]
    for candidate in filter(None, candidates):
        done = subprocess.run([candidate, "--version"], capture_output=True, text=True)
        if done.returncode == 0 and "3.6" in done.stdout + done.stderr:
            return candidate
    return None


def test_on_a_real_python_36_the_bundler_gives_the_same_file_and_the_agent_runs(tmp_path):
    """What a JetPack 4.6 device (and its Docker image, which bundles there) runs."""
    python = _python36()
    if python is None:
        pytest.skip("no Python 3.6 interpreter here (vermin still checks the syntax)")
    out = tmp_path / "jetsynth_agent.py"
    done = subprocess.run([python, str(PACKAGE / "bundle.py"), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == agent_source()
    done = subprocess.run([python, str(out), "facts", "--workdir", str(tmp_path)], capture_output=True,
                          text=True)
    facts = json.loads(done.stdout)
    assert done.returncode == 0 and facts["python"].startswith("3.6") and facts["free_disk_mib"] > 0
    done = subprocess.run([python, str(out), "run", str(tmp_path / "absent.onnx")], capture_output=True,
                          text=True)
    assert done.returncode == 2 and json.loads(done.stdout) == {"error": f"no model at {tmp_path / 'absent.onnx'}"}
