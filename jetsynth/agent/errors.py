"""The agent's one error type."""


class AgentError(Exception):
    """Something the device cannot do; the message is one line for the user."""
