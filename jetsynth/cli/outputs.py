"""The command line's output files (`-o`), checked before any work: a file jetsynth writes is a
plain file outside every run directory, so `-o /dev/null` (as root, the system's), a FIFO, a
link, or `-o RUN/config.json` end with one line instead of being replaced."""

from __future__ import annotations

from pathlib import Path

import click


class OutputFile(click.Path):
    """A path to write a file to: absent, or a plain file that is not inside a run directory."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value, param, ctx) -> Path:
        from jetsynth.errors import JetsynthError
        from jetsynth.run.rundir import run_directory_holding
        from jetsynth.storage import output_file

        path = super().convert(value, param, ctx)
        try:
            output_file(path)
        except JetsynthError as exc:
            self.fail(str(exc), param, ctx)
        run = run_directory_holding(path)
        if run is not None:
            self.fail(f"{path} is inside the run directory {run}, whose files jetsynth keeps; "
                      "write the output somewhere else", param, ctx)
        return path


OUTPUT = OutputFile()
