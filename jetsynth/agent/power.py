"""Power while timing: `tegrastats` (when the device has it) sampled in the background, as mean
milliwatts per rail and millijoules per image from the board's input rail."""

import re
import shutil
import subprocess
import threading

from .lifetime import start_child

_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")


def parse_tegrastats(line):
    """One tegrastats line -> {rail: instantaneous mW}. Rails print as 'NAME now/avg' (older
    boards) or 'NAME nowmW/avgmW' (Orin); memory fields such as 'RAM 1461/3964MB' are not rails."""
    return {name: int(now) for name, now, _avg in _RAIL.findall(line)}


class PowerSampler:
    """Samples tegrastats every `interval_ms` in the background while a timed loop runs."""

    def __init__(self, interval_ms=100):
        self.interval_ms = interval_ms
        self.samples = []
        self.process = None
        self.thread = None

    def __enter__(self):
        program = shutil.which("tegrastats")
        if program:
            try:
                self.process = start_child([program, "--interval", str(self.interval_ms)],
                                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                           universal_newlines=True)
            except OSError:
                self.process = None
        if self.process is not None:
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        return self

    def _read(self):
        for line in self.process.stdout:
            rails = parse_tegrastats(line)
            if rails:
                self.samples.append(rails)

    def __exit__(self, *exc):
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.thread.join(timeout=5)

    def summary(self, fps):
        """Mean mW per rail over the timed loop and, from the input rail, mJ per image."""
        return power_summary(self.samples, fps)


def power_summary(samples, fps):
    if not samples:
        return None
    rails = {}
    for sample in samples:
        for name, value in sample.items():
            rails.setdefault(name, []).append(value)
    means = {name: sum(values) / len(values) for name, values in rails.items()}
    result = {"source": "tegrastats", "samples": len(samples), "rails_mw": means}
    for name in INPUT_RAILS:
        if name in means and fps > 0:
            result["input_rail"] = name
            result["mj_per_image"] = means[name] / fps
            break
    return result
