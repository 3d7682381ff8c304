"""`make bench`: run every scenario, print the table, write docs/benchmarks.md.

usage: python bench/run.py [--quick] [--no-write] [--only claim,idle,...] [--keep]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # testing/ (shared with the tests)

from harness import ROOT, Row, machine, render_table  # noqa: E402
from hostile import hostile  # noqa: E402  (issue 13: large and deep inputs)
from lab import Lab  # noqa: E402
from scenarios import FULL, QUICK, SCENARIOS  # noqa: E402

SCENARIOS = {**SCENARIOS, "hostile": hostile}

DOC = ROOT / "docs" / "benchmarks.md"

ABOUT = """\
## How to run

    make bench                        # full sizes, writes this file (about 12 minutes on 2 quiet cores)
    .venv/bin/python bench/run.py --quick --no-write   # tiny sizes, 1 repetition (the smoke test)
    .venv/bin/python bench/run.py --only claim,idle    # some scenarios

Every figure is the median of repeated runs, measured next to its baseline in the same run, with
the two interleaved so that the machine's load hits both alike; compare ratios, not milliseconds.
Whole-process figures are wall time from spawn to exit of the `ifcoord` console script. Rows
marked "served" run with `ifcoord serve` up (docs/agents.md, section 6), as an agent's commands
run while its `poll` is up: the process hands the command to the server's forked copy. Rows
marked "own process" run with no server (IFCOORD_SERVER=0): the process starts Python and
imports the CLI itself. Everything else runs in its own process. Remotes
are real: a bare repository on disk, or `git daemon` on 127.0.0.1. Git runs with an isolated
HOME (no user or system config).

## What each row measures

- **claim, whole process**: `ifcoord claim TASK -s NEW-SESSION --json` in a clone whose private
  ref is up to date, one new task per run. Baseline: `bench/raw_claim.sh`, the same git work by
  plain git: fetch into a private ref, the edited board, the status file and the dashboard
  written with `hash-object`, three trees with `mktree`, `commit-tree`, `push --force-with-lease`.
  Over git daemon, ifcoord reads the tip and pushes its commit without git (docs/protocol.md,
  section 2), while git's own client waits about 40 ms on each request there, so ifcoord can be
  quicker than the plain git that does its work; its fetches are still git's.
- **claim, in-process**: one `Workspace` built once, then `ws.apply(claim_task)` per claim, as the
  poll loop does it (GitPython's cat-file process already running). Baseline: `raw_claim.sh`.
- **start-up**: `ifcoord --version` and `ifcoord board` (50 tasks, bare remote; served and in
  its own process) versus `python -c pass` with the same interpreter. The targets are absolute
  margins.
- **idle**: a session that holds a task with a fresh heartbeat, nothing changed on the remote
  (git daemon). `poll --once` as a whole process, and `PollLoop.cycle()` run N times in one
  process. Baseline: one `git ls-remote` (git's client, with its wait over git://; ifcoord
  reads the tip without git there). Git processes are counted with a logging `git` first
  on PATH (top-level commands only: git's own children such as pack-objects are not counted;
  GitPython's persistent `cat-file` is counted once, when it starts); "runner" is
  `ws.runner.calls`, the processes ifcoord starts through `GitRunner`. Round trips are the
  requests the git daemon logged (for ls-remote, fetch or push), whoever made them. Remote
  bytes: size of the bare repository's objects/ before and after.
- **contention**: N processes `ifcoord claim --next --json`, each with its own clone and session,
  started at once against git daemon; time from the first spawn until the last exits. Pushes per
  claim is the sum of `attempts` over claims landed; double claims come from the branch history's
  trailers (`Ifcoord-Op: claim`, `Ifcoord-Task:`): a task claimed twice counts. Baseline: one
  uncontended raw claim, and the ratio is against N of them one after the other. Served for each
  N, and for the largest N also in own processes. All clones are on this machine, so they take
  turns at the branch (docs/protocol.md, section 3, the machine queue).
- **scale**: 10 boards of 500 tasks each and 200 status files (full mode), versus a 20-task board;
  and the same files on top of a 100,000-commit history built with `git fast-import` (small
  commits touching a filler file), versus the same files with one commit. `board` renders the
  table, `next -s viewer` picks, `claim TASK` lands a commit. The clone has fetched the branch
  once before timing, so the parse cache (`~/.cache/ifcoord/parses/`, in the lab's HOME) is
  warm, as it is for an agent's second command; a claim reads only the section of the task it
  edits, and leaves the parses of the files it wrote in the cache for the next command. These
  rows run in their own processes (no server). `board --json` prints every task (250 times more
  output than the 20-task board).
- **hostile**: `bench/hostile.py` (runnable on its own): the catalogue of large and deep inputs
  (dependency chains and wide boards of 5,000 and 50,000 tasks, tasks depending on their own
  group, nested headings, deeply nested STATUS files, boards over and under the 2 MiB limit),
  each read command (`lint`, `board`, `next`, `status`, `graph`) as its own process over
  `--dir`, with wall time, peak memory and exit code (never 1); and 50,000 versus 5,000 tasks
  for `lint`, `board` and `next`, target at most 10x.
- **growth**: bytes the remote gains per claim and per heartbeat (`ifcoord heartbeat -s X`, one
  second apart), three ways. "Packed": the new objects each whole (`pack-objects --revs
  old..new`), as loose objects sit on the remote until its next gc (in brackets: the loose bytes
  on disk). "Pushed": the thin pack a push sends (deltas against objects the remote has).
  "Kept after gc": how much the remote's objects grow once it has repacked (`git repack -a -d`
  before and after the operations), which is what a host stores for good. Baseline: the same for
  `raw_claim.sh`. The last rows compare a claim at scale with one at 50 tasks. At scale a claim
  rewrites a 500-task board and a 200-entry `status/` tree whole, so "packed" grows with the
  board and the team; deltas make "pushed" and "kept after gc" follow the change itself.
- **team**: N sessions, each a `Workspace` on its own clone running `PollLoop.cycle()` (what
  `ifcoord poll` runs), as threads in a few processes forked after the set-up (one interpreter
  lock for 200 sessions would measure that lock), against `git daemon`. The clock is the
  defaults (poll 30 s, heartbeat 120 s, lease 600 s) divided by one factor, 1 at full size
  (docs/scaling.md says why); sessions join over one mean task time, so claims come at their
  steady-state rate (a team started in one instant is the contention scenario). A session works
  on a claimed task for a random time, then finishes it as docs/agents.md tells agents to,
  `complete --next` (the completion, then `now`'s claim of the next task in the same turn at
  the branch); a session's first task comes from its loop. Claim latency is `Workspace.apply`
  of the claim, retries included (a claim inside the completion's turn waits for no turn of
  its own; the rows below split the two kinds, and time the completions), against a claim with nobody
  else about made the same way (decided on the session's own look, then pushed; the median of
  9 made before the team starts and 9 after it stops, as the machine's speed drifts); leases
  lost are `lease-lost` events; commits per second and double claims come from the branch
  history. The parse cache is the machine's, as for real sessions (one for the
  lab's HOME): the session that lands a commit leaves the parses of the boards it wrote, the
  others read them; the state at a commit is built once per process and shared.
  The machine queue row times every turn (docs/protocol.md, section 3): how long an attempt
  waited for it, how long it held it (fetch, decide, push), and how many went ahead without.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {DOC.relative_to(ROOT)}")
    parser.add_argument("--only", default="", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    parser.add_argument("--keep", action="store_true", help="keep the scratch repositories")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")

    info = machine()
    rows: list[Row] = []
    durations: dict[str, float] = {}
    lab = Lab(keep=args.keep)
    try:
        for name in names:
            start = time.perf_counter()
            print(f"running {name}...", file=sys.stderr, flush=True)
            rows += SCENARIOS[name](lab, sizes)
            durations[name] = time.perf_counter() - start
    finally:
        lab.close()
        if args.keep:
            print(f"scratch repositories kept in {lab.root}", file=sys.stderr)

    table = render_table(rows)
    total = sum(durations.values())
    timing = ", ".join(f"{n} {s:.0f} s" for n, s in durations.items())
    print(table)
    print(f"\n{'quick' if args.quick else 'full'} run in {total:.0f} s ({timing})")
    if not args.no_write:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(render_doc(table, info, args.quick, total, timing))
        print(f"written to {DOC.relative_to(ROOT)}")
    missed = [r for r in rows if r.met is False]
    if missed:
        print(f"{len(missed)} target(s) not met", file=sys.stderr)
    return 0


def render_doc(table: str, info: dict[str, str], quick: bool, total: float, timing: str) -> str:
    machine_lines = "\n".join(f"- {k}: {v}" for k, v in info.items())
    mode = "quick (tiny sizes, 1 repetition: not for comparison)" if quick else "full"
    return (
        "# Benchmarks\n\n"
        "Written by `make bench` (`bench/run.py`); do not edit by hand.\n\n"
        f"## Results\n\nMode: {mode}; ran in {total:.0f} s ({timing}).\n\n{table}\n\n"
        f"## Machine\n\n{machine_lines}\n\n{ABOUT}"
    )


if __name__ == "__main__":
    sys.exit(main())
