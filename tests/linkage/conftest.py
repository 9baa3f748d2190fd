"""Linkage tests use the base-data fixtures (a small generated district)."""

from tests.basedata.conftest import mapped

__all__ = ["mapped"]
