"""Fixtures the CLI tests share with the detector's: a detector service with a recording launcher."""

from tests.detector.test_service import admin_service

__all__ = ["admin_service"]
