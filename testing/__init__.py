"""Helpers for tests and the randomized checker (not shipped with the package)."""
