"""The one exception type the command line turns into a single line and a non-zero exit."""


class JetsynthError(Exception):
    """A problem with the user's input or environment: the message says what is wrong and what
    to do. The CLI prints it on one line and exits with status 2; anything else is a bug."""
