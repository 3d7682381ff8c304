"""The `hostile` scenario: the catalogue of large and deep inputs from issue 13, each read command's
wall time and peak memory over it, and the check that work grows linearly (5,000 -> 50,000 tasks
within 10x for lint, board and next).

Runnable on its own:  .venv/bin/python bench/hostile.py [--quick]
Each command runs as its own process (`ifcoord CMD --dir FOLDER`: the input's cost alone, no git),
started through a small wrapper that reports the child's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from harness import Row  # noqa: E402

from testing.hostile import big_board, chain, deep_status, nested_headings, own_group, wide  # noqa: E402

LIMIT = 300.0  # seconds per command before it counts as "did not finish"
READS = [["lint"], ["board"], ["next", "-s", "s1"], ["status"], ["graph", "-f", "text"]]
LINEAR = [["lint"], ["board"], ["next", "-s", "s1"]]

# The wrapper: run ifcoord, then print wall time, exit code and the child's peak RSS (KiB).
_WRAPPER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
try:
    code = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=float(sys.argv[1])).returncode
except subprocess.TimeoutExpired:
    code = None
wall = time.perf_counter() - start
print(json.dumps([wall, code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))
"""


def measure(folder: Path, args: list[str]) -> tuple[float, int | None, int]:
    """(seconds, exit code or None when over LIMIT, peak KiB) of one `ifcoord ARGS --dir folder`."""
    ifcoord = [sys.executable, "-m", "ifcoord", *args, "--dir", str(folder)]
    out = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(LIMIT), *ifcoord], capture_output=True, text=True, check=True
    ).stdout
    wall, code, kib = json.loads(out)
    return wall, code, kib


def lay_out(root: Path, files: dict[str, bytes]) -> Path:
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


def sizes_for(quick: bool) -> tuple[int, int]:
    return (200, 2000) if quick else (5000, 50_000)


def catalogue(quick: bool) -> list[tuple[str, Callable[[], dict[str, bytes]]]]:
    small, large = sizes_for(quick)
    if quick:  # the smoke test (it runs every scenario within minutes): the linear check only
        return [
            (f"chain {small}", lambda: chain(small)),
            (f"chain {large}", lambda: chain(large)),
            ("STATUS x: [[..]] 400 deep", lambda: deep_status(400)),
        ]
    return [
        (f"chain {small}", lambda: chain(small)),
        (f"chain {large}", lambda: chain(large)),
        (f"wide {small}", lambda: wide(small)),
        (f"wide {large}", lambda: wide(large)),
        ("own group 300", lambda: own_group(300)),
        ("own group 600", lambda: own_group(600)),
        ("nested headings 2000", lambda: nested_headings(2000)),
        ("STATUS x: [[..]] 400 deep", lambda: deep_status(400)),
        ("STATUS 300 nested mappings", lambda: deep_status(300, flow=False)),
        ("STATUS 40 KB of brackets", lambda: deep_status(20_000)),
        ("board 20 MB (over the limit)", lambda: big_board(20 * 1024 * 1024)),
        ("board 1.9 MiB", lambda: big_board(1_900_000)),
    ]


def hostile(lab: object = None, sizes: object = None, quick: bool | None = None) -> list[Row]:
    """The scenario as bench/run.py calls it (`lab` unused: no git here)."""
    quick = bool(getattr(sizes, "reps", 2) == 1) if quick is None else quick
    rows: list[Row] = []
    times: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="ifcoord-hostile-") as tmp:
        for index, (name, make) in enumerate(catalogue(quick)):
            folder = lay_out(Path(tmp) / str(index), make())
            for args in LINEAR if quick else READS:
                wall, code, kib = measure(folder, args)
                cmd = " ".join(args[:1])
                times[(name, cmd)] = wall
                shown = "over limit" if code is None else f"exit {code}"
                rows.append(
                    Row(
                        "hostile", f"{name}: {cmd}", f"{wall:.2f} s, {kib / 1024:.0f} MB, {shown}",
                        target="no exit 1, finishes", met=code is not None and code != 1,
                    )  # fmt: skip
                )
        small, large = sizes_for(quick)
        for shape in ("chain",) if quick else ("chain", "wide"):
            for args in LINEAR:
                cmd = args[0]
                a, b = times[(f"{shape} {small}", cmd)], times[(f"{shape} {large}", cmd)]
                rows.append(
                    Row(
                        "hostile", f"{shape} {large} vs {small} tasks: {cmd}", f"{b:.2f} s",
                        baseline=f"{a:.2f} s", ratio=f"{b / a:.1f}x", target="<= 10x", met=b / a <= 10,
                    )  # fmt: skip
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few small cases (200 and 2,000 tasks)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = hostile(quick=args.quick)
    width = max(len(r.measure) for r in rows)
    for r in rows:
        extra = f"  (baseline {r.baseline}, {r.ratio}, {r.target}: {r.verdict})" if r.ratio else ""
        print(f"{r.measure:<{width}}  {r.value}{extra}" + ("" if r.met is not False else "  NOT MET"))
    print(f"ran in {time.perf_counter() - start:.0f} s")
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
