"""The agent as it is shipped: the bundled file, written once per session, and a way to run it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jetsynth.agent.bundle import bundle


@pytest.fixture(scope="session")
def agent_file(tmp_path_factory) -> Path:
    """The one file `jetsynth deploy` ships, as `jetsynth_agent.py`."""
    path = tmp_path_factory.mktemp("agent") / "jetsynth_agent.py"
    path.write_text(bundle())
    return path


@pytest.fixture
def agent(agent_file):
    """Run the shipped agent with arguments: (exit status, its one JSON object)."""

    def run(*args, env=None):
        done = subprocess.run([sys.executable, str(agent_file), *args], capture_output=True, text=True,
                              env=env)
        return done.returncode, json.loads(done.stdout)

    return run
