"""Yiwang (一网): an open platform for a district's city digital governance centre."""

__version__ = "0.1.0"
