"""Helpers for tests and benchmarks (not shipped)."""
