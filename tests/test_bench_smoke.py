"""The benchmark suite still runs: every scenario at tiny sizes, one repetition, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow(55)
def test_bench_quick_run_prints_every_scenario_and_writes_nothing() -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    before = doc.read_bytes() if doc.exists() else None
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--no-write"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for scenario in ("claim", "start-up", "idle", "contention", "scale", "growth", "hostile", "team"):
        assert f"| {scenario} " in proc.stdout, f"no rows for {scenario}:\n{proc.stdout}"
    assert "0 double" in proc.stdout
    assert (doc.read_bytes() if doc.exists() else None) == before
