"""The randomized own-branch checker (testing/ownbranch_check.py), at a small size."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT))
from testing.ownbranch_check import run_check  # noqa: E402


@pytest.mark.timeout(300)
def test_random_sessions_kills_and_lapsed_leases_never_break_the_guarantees(tmp_path: Path) -> None:
    report = run_check(tmp_path, sessions=3, ops=24, seed=2, kill_rate=0.15, lease=2.0)
    print(report.to_json())
    assert report.violations == []
    assert report.operations + report.arbiter_rounds - 2 == 24  # every step ran (two final rounds)
    assert report.accepted > 0 and report.commits > 2 and report.views_compared > 0
