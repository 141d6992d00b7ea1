"""The one exception type the command line turns into a single line and a non-zero exit."""

from __future__ import annotations


class JetsynthError(Exception):
    """A problem with the user's input or environment: the message says what is wrong and what
    to do. The CLI prints it on one line and exits with status 2; anything else is a bug.

    `setting`: the settings the message names, in backticks, by their names in the API and config
    files (`max_drop`); the command line shows each as its flag (--max-drop), so that one message
    serves both."""

    def __init__(self, message: str, *, setting: str | tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.settings: tuple[str, ...] = (setting,) if isinstance(setting, str) else tuple(setting)
