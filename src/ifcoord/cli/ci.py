"""Where the arbiter runs (own-branch mode): `ifcoord arbitrate` on any machine that may push the
coordination branch, and `ifcoord ci github|gitlab`, which write a CI job that runs
`ifcoord arbitrate --once` on the git host whenever a session branch is pushed.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import typer

from ifcoord.cli.common import BranchOpt, JsonOpt, RemoteOpt, emit, note, workspace
from ifcoord.errors import UsageError

ci_app = typer.Typer(
    name="ci",
    help="Write a CI job that runs the own-branch arbiter on pushes to session branches.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("arbitrate")(arbitrate)
    ci_app.command("github")(github)
    ci_app.command("gitlab")(gitlab)
    app.add_typer(ci_app, name="ci")


def arbitrate(
    once: bool = typer.Option(False, "--once", help="Decide once and exit (a CI job, a cron job)."),
    interval: float = typer.Option(10.0, "--interval", help="Seconds between rounds."),
    session: str | None = typer.Option(
        "arbiter", "--session", "-s", help="This arbiter's name (in the lock)."
    ),
    remote: str | None = RemoteOpt,
    branch: str | None = BranchOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Own-branch mode: decide the sessions' proposals (claims, progress, completions) on the
    coordination branch. Only one arbiter decides at a time (a lock record on the branch).

    Example: ifcoord arbitrate --interval 10   |   ifcoord arbitrate --once
    """
    from ifcoord.ownbranch.arbiter import arbitrate_forever, arbitrate_once
    from ifcoord.session.stopping import StopSignal

    ws = workspace(session, remote, branch)

    def report(result: dict[str, Any]) -> None:
        if as_json:
            emit(result)
        elif "error" in result:
            note(f"ifcoord: {result['error']}")
        elif result.get("held_by"):
            note(f"arbiter {result['held_by']} holds {ws.branch}: not deciding")
        else:
            for d in result["decisions"]:
                tail = f"epoch {d['epoch']}" if d["verdict"] == "accepted" else d.get("reason", "")
                note(f"{d['session']}#{d['seq']} {d['op']} {d['task']}: {d['verdict']} ({tail})")

    if once:
        report(arbitrate_once(ws))
        return
    stop = StopSignal()
    stop.install()
    arbitrate_forever(ws, interval, report, stop)


def arbitrate_command(session: str, remote: str, branch: str) -> str:
    """The command line the CI job runs (tests run exactly this)."""
    return shlex.join(["ifcoord", "arbitrate", "--once", "--session", session, "--remote", remote,
                       "--branch", branch])  # fmt: skip


def github_workflow(session_glob: str, branch: str, install: str, session: str) -> str:
    """A GitHub Actions workflow: on pushes to session branches, decide with the repository's token."""
    command = arbitrate_command(session, "origin", branch)
    return f"""# Written by `ifcoord ci github`: the own-branch arbiter, run on the git host.
# Sessions push only their own branches; this job is the one writer of `{branch}`.
name: ifcoord arbiter
on:
  push:
    branches: [{_quote(session_glob)}]
  schedule:
    - cron: "*/15 * * * *"  # lapsed leases are judged even when no session pushes
  workflow_dispatch: {{}}
permissions:
  contents: write
concurrency:
  group: ifcoord-arbiter
  cancel-in-progress: false
jobs:
  arbitrate:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          token: ${{{{ secrets.GITHUB_TOKEN }}}}
          fetch-depth: 1
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - run: pip install {shlex.quote(install)}
      - name: decide the pending proposals
        run: {command}
"""


def gitlab_job(session_regex: str, branch: str, install: str, session: str) -> str:
    """A GitLab CI job: on pushes to session branches; pushes with a project access token."""
    command = arbitrate_command(session, "origin", branch)
    return f"""# Written by `ifcoord ci gitlab`: the own-branch arbiter, run on the git host.
# Needs a CI/CD variable IFCOORD_TOKEN: a project access token with write_repository.
ifcoord-arbiter:
  image: python:3.12
  resource_group: ifcoord-arbiter
  rules:
    - if: '$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH =~ /{session_regex}/'
    - if: '$CI_PIPELINE_SOURCE == "schedule"'
  before_script:
    - pip install {shlex.quote(install)}
    - git remote set-url origin "https://ifcoord-arbiter:${{IFCOORD_TOKEN}}@${{CI_SERVER_HOST}}/${{CI_PROJECT_PATH}}.git"
  script:
    - {command}
"""


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def glob_for_github(pattern: str) -> str:
    """GitHub's branch filters read globs as ifcoord.yaml does (`*` within a segment, `**`
    across): the pattern is the same."""
    return pattern


def regex_for_gitlab(pattern: str) -> str:
    """GitLab's `rules: if` takes a regular expression: the one ifcoord.yaml's glob means."""
    from ifcoord.files.config import glob_regex_source

    return "^" + glob_regex_source(pattern).replace("/", "\\/") + "$"


SessionsOpt = typer.Option(
    "claude/*", "--session-branches", help="The session branch pattern (as in ifcoord.yaml)."
)
InstallOpt = typer.Option("ifcoord", "--install", help="What the job installs with pip.")
NameOpt = typer.Option("ci-arbiter", "--session", "-s", help="The arbiter's name in the lock.")


def _write(path: Path, text: str, force: bool, as_json: bool, what: str) -> None:
    if path.exists() and path.read_text() != text and not force:
        raise UsageError(f"{path} exists", hint="pass --force to replace it, or --output another file")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if as_json:
        emit({"written": str(path), "kind": what})
    else:
        note(f"wrote {path}: commit it on the default branch")


def github(
    output: Path = typer.Option(
        Path(".github/workflows/ifcoord-arbiter.yml"), "--output", help="Where to write the workflow file."
    ),
    session_branches: str = SessionsOpt,
    branch: str = typer.Option("ifcoord", "--branch", help="The coordination branch."),
    install: str = InstallOpt,
    session: str = NameOpt,
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
    as_json: bool = JsonOpt,
) -> None:
    """Write a GitHub Actions workflow that runs `ifcoord arbitrate --once` on pushes to session branches.

    Example: ifcoord ci github --session-branches 'claude/*'
    """
    text = github_workflow(glob_for_github(session_branches), branch, install, session)
    _write(output, text, force, as_json, "github")


def gitlab(
    output: Path = typer.Option(
        Path(".gitlab/ifcoord-arbiter.yml"), "--output", help="Where to write the CI job file."
    ),
    session_branches: str = SessionsOpt,
    branch: str = typer.Option("ifcoord", "--branch", help="The coordination branch."),
    install: str = InstallOpt,
    session: str = NameOpt,
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
    as_json: bool = JsonOpt,
) -> None:
    """Write a GitLab CI job (include it from .gitlab-ci.yml) that runs `ifcoord arbitrate --once`
    on pushes to session branches.

    Example: ifcoord ci gitlab, then in .gitlab-ci.yml: include: [{local: .gitlab/ifcoord-arbiter.yml}]
    """
    text = gitlab_job(regex_for_gitlab(session_branches), branch, install, session)
    _write(output, text, force, as_json, "gitlab")
