"""The randomized checker at a small size: random operations by several sessions over git daemon
with pushes cut, processes SIGKILLed, leases lapsing, a person rewinding and a skewed clock;
the replayed history must show no violation. `make chaos` runs it at 2,000 operations."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.parametrize(
    "flow", [["--flow", "random"], ["--flow", "agents", "--tasks", "40"]], ids=["random", "agents"]
)
def test_the_randomized_checker_finds_no_violation_at_a_small_size(flow: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "testing" / "chaos.py"), "--ops", "24", "--sessions", "3",
         "--cut", "0.3", "--kill", "0.15", "--rewind-every", "6", "--seed", "7", "--json", *flow],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert done.stdout, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["violations"] == [], result
    assert done.returncode == 0
    assert result["operations"] >= 20
    assert result["landed"] > 0
    assert sum(result["faults"].values()) > 0, result
