"""Helpers for tests, benchmarks and the randomized checkers (not shipped with the package)."""
