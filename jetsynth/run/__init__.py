"""A run: its configuration, directory, training, measurement and generation loop."""
