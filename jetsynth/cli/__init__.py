"""The `jetsynth` command line."""
