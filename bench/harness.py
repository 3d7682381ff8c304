"""Timing, counting and reporting for the benchmarks: medians of whole-process runs, git process
counts from GIT_TRACE, the results table and the machine it ran on.

Every figure is reported next to a baseline measured in the same run, so that numbers from a
noisy or slow machine still compare as ratios.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
IFCOORD = str(Path(sys.executable).parent / "ifcoord")  # the console script agents run
PYTHON = sys.executable


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    measure: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None  # None: reported only, no target

    @property
    def verdict(self) -> str:
        return "" if self.met is None else ("met" if self.met else "NOT MET")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline > 0 else "n/a"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(
    cmd: Sequence[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=env, capture_output=True, timeout=timeout, check=False, input=input
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return proc


def git(*args: str, cwd: Path | None = None, input: bytes | None = None, check: bool = True) -> str:
    return run(["git", *args], cwd=cwd, input=input, check=check).stdout.decode().strip()


def timed(cmd: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    """Wall time of one whole process, from spawn to exit; fails loudly on a non-zero exit."""
    start = time.perf_counter()
    run(cmd, cwd=cwd, env=env)
    return time.perf_counter() - start


def timed_call(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(reps: int, *fns: Callable[[int], float]) -> list[list[float]]:
    """Run each measurement `reps` times, alternating between them so that drift in the
    machine's load hits ifcoord and its baseline alike. Returns one list of times per fn."""
    out: list[list[float]] = [[] for _ in fns]
    for i in range(reps):
        for j, fn in enumerate(fns):
            out[j].append(fn(i))
    return out


GIT_WRAPPER = """#!/bin/sh
# Logs the git commands started by anything but git itself, then runs the real git.
case "$(cat /proc/$PPID/comm 2>/dev/null)" in
  git*) ;;
  *) printf '%s\\n' "$*" >> "$IFCOORD_BENCH_GITLOG" ;;
esac
exec {real} "$@"
"""


def git_counter(where: Path) -> Path:
    """A folder holding a `git` that logs each top-level git command: put it first on PATH and
    set IFCOORD_BENCH_GITLOG. Git's own children (upload-pack on a local remote, pack-objects)
    are not counted: their parent is git."""
    import shutil

    real = shutil.which("git")
    assert real, "git is not on PATH"
    where.mkdir(parents=True, exist_ok=True)
    wrapper = where / "git"
    wrapper.write_text(GIT_WRAPPER.format(real=real))
    wrapper.chmod(0o755)
    return where


def logged_commands(log: Path) -> list[str]:
    """The git subcommand of each logged line (`--git-dir=...` and other options skipped)."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text(errors="replace").splitlines():
        words = [w for w in line.split() if not w.startswith("-")]
        out.append(words[0] if words else "?")
    return out


def objects_bytes(git_dir: Path) -> int:
    """Bytes on disk under a repository's objects/ (loose objects and packs)."""
    total = 0
    for root, _, files in os.walk(git_dir / "objects"):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def packed_size(git_dir: Path, new: str, old: str | None, thin: bool = False) -> int:
    """Bytes of a pack holding exactly the objects reachable from `new` and not from `old`; with
    `thin`, deltas against objects of `old` are allowed, as in the pack a push sends."""
    revs = f"{new}\n" + (f"^{old}\n" if old else "")
    cmd = ["git", f"--git-dir={git_dir}", "pack-objects", "--revs", "--stdout", "-q"]
    if thin:
        cmd.append("--thin")
    out = run(cmd, input=revs.encode())
    return len(out.stdout)


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = "n/a"
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        pass
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "git": git("--version").removeprefix("git version "),
        "os": f"{platform.system()} {platform.release()}",
        "load average at start": load,
    }


def render_table(rows: Sequence[Row]) -> str:
    """A markdown table (readable as plain text too)."""
    head = ("Scenario", "Measure", "ifcoord", "Baseline", "Ratio", "Target", "Met")
    body = [(r.scenario, r.measure, r.value, r.baseline, r.ratio, r.target, r.verdict) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(b) for b in body)])
