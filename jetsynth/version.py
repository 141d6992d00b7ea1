"""The installed package's version, read once from its metadata (a source tree that was never
installed says so)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jetsynth")
except PackageNotFoundError:
    __version__ = "0.0.0+unknown"
