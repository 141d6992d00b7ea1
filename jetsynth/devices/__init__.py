"""Jetson devices: the inventory, SSH, deployment, device profiles."""
