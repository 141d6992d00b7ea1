"""The agent's child programs and its end: everything it starts is remembered, so that a closed
stdin (the host is gone) or a deadline ends the programs and the work folder with the agent."""

import contextlib
import os
import shutil
import subprocess
import threading
import time

WORKDIR_PREFIX = "jetsynth."
_children = set()
_children_lock = threading.Lock()


def start_child(argv, **kwargs):
    """subprocess.Popen, remembered so that `stop` can end the program with the agent."""
    process = subprocess.Popen(argv, **kwargs)
    with _children_lock:
        _children.add(process)
    return process


def run_child(argv, timeout=None):
    """Run a program to its end (stdout and stderr together, as text): (exit status, output)."""
    process = start_child(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    try:
        output = process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    finally:
        with _children_lock:
            _children.discard(process)
    return process.returncode, output


def stop(workdir, code=3):
    """End the agent now: its child programs, its own work folder (only one made by deploy, by
    its name), then the process, without waiting for the main thread."""
    with _children_lock:
        children = list(_children)
    for process in children:
        with contextlib.suppress(OSError):
            process.kill()
    if workdir and os.path.basename(os.path.normpath(workdir)).startswith(WORKDIR_PREFIX):
        shutil.rmtree(workdir, ignore_errors=True)
    os._exit(code)


def watch(workdir, watch_stdin, max_seconds):
    """Start the daemon threads that end the agent when its stdin closes (the host is gone)
    and/or after `max_seconds`."""
    if watch_stdin:
        def stdin_closed():
            try:
                while os.read(0, 65536):
                    pass
            except OSError:
                pass
            stop(workdir)

        threading.Thread(target=stdin_closed, name="stdin-watch", daemon=True).start()
    if max_seconds:
        def deadline():
            time.sleep(max_seconds)
            stop(workdir, 4)

        threading.Thread(target=deadline, name="deadline", daemon=True).start()
