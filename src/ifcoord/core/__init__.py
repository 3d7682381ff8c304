"""Decisions over a snapshot: lifecycle, scheduler, leases, operations, lint, rows (pure)."""
