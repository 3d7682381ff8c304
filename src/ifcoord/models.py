"""Typed models of what lives on the coordination branch: tasks, boards, session status, config.

Pure data; parsing lives in boardfile/statusfile/config, decisions in scheduler/ops/leases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

State = Literal["open", "claimed", "in_progress", "blocked", "review", "done", "cancelled"]
STATES: tuple[State, ...] = ("open", "claimed", "in_progress", "blocked", "review", "done", "cancelled")
Kind = Literal["primary", "filler"]
SessionState = Literal["polling", "working", "blocked", "idle", "offline", "done"]
Mode = Literal["shared", "own-branch"]
Severity = Literal["error", "warning", "note"]

# Words a board reads as "no owner": a session with one of these names would claim a task that
# then reads back as unowned, and nobody could ever finish or free it.
RESERVED_SESSION_NAMES = frozenset({"none", "null", "nobody", "unassigned", "n-a"})
# \A..\Z, not ^..$: `$` also matches before a final newline, and "s2\n" is not a name. A name
# starts with a letter or digit, so it can never be read as an option (`-`) or a path (`..`).
SESSION_NAME_PATTERN = (
    r"\A(?!(?:" + "|".join(sorted(RESERVED_SESSION_NAMES)) + r")\Z)[a-z0-9][a-z0-9._-]{0,63}\Z"
)


class Milestone(NamedTuple):
    """A checkbox item under a task's `**Milestones:**` label.

    Milestones and field lines are tuples, not models: a 5,000-task branch holds 20,000 of them,
    and every command builds them all from the parse cache (a JSON array each): 25% of reading
    the branch was building them as models."""

    text: str  # the item text after the checkbox, e.g. "25% - Test scaffolding"
    percent: int | None = None  # the leading percentage when the item has one
    done: bool = False
    line: int = 0  # 1-based line in the board file


class FieldLine(NamedTuple):
    """One `**Key:** value` line inside a task (or at file level)."""

    key: str  # canonical field name (see board-format) or the raw key lower-cased for extras
    label: str  # the key exactly as written, e.g. "Blocked Until"
    value: str
    line: int


class Task(BaseModel):
    model_config = ConfigDict(frozen=False)

    id: str
    title: str
    file: str  # path of the board file, relative to the branch root
    line: int  # 1-based line of the heading
    end_line: int  # 1-based last line of the task's section (inclusive)
    level: int  # heading level 2..6
    phase: str
    position: int  # index of the task inside its file, 0-based
    kind: Kind = "primary"
    state: State = "open"
    status_word: str | None = None  # the status value as written, e.g. "NOT STARTED"
    owner: str | None = None
    sessions: list[str] = Field(default_factory=list)  # who may take it; empty = anyone
    depends_raw: str | None = None  # the dependency value as written
    depends_tokens: list[str] = Field(default_factory=list)  # IDs or group prefixes, unresolved
    priority: str | None = None
    estimate: str | None = None
    deliverable: str | None = None
    risk: str | None = None
    model: str | None = None
    progress: int | None = None  # percent, from the Progress field or ticked milestones
    epoch: int = 0  # fencing number of the current/last claim
    claimed_at: datetime | None = None
    completed_at: datetime | None = None
    previous_owner: str | None = None
    waiting_on: list[str] = Field(default_factory=list)  # IDs given to `block --on`
    block_reason: str | None = None
    note: str | None = None
    tests: str | None = None  # "N passed, M failed", as the last report wrote it
    cancel_reason: str | None = None
    milestones: list[Milestone] = Field(default_factory=list)
    lists: dict[str, list[str]] = Field(default_factory=dict)  # other labelled lists
    fields: list[FieldLine] = Field(default_factory=list)  # every field line of the section
    extra: dict[str, str] = Field(default_factory=dict)  # unknown keys, label -> value


class Diagnostic(BaseModel):
    """A lint finding or a parse note, always located as file:line."""

    severity: Severity
    file: str
    line: int = 0
    code: str  # short stable id: unreadable, duplicate-id, unknown-dependency, cycle, ...
    message: str

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity}: {self.message}"


class Board(BaseModel):
    """One board file, parsed."""

    path: str
    phase: str
    tasks: list[Task] = Field(default_factory=list)
    file_fields: list[FieldLine] = Field(default_factory=list)  # fields before the first task
    upper_status_words: bool = False  # the file writes status words in capitals
    diagnostics: list[Diagnostic] = Field(default_factory=list)


class SessionStatus(BaseModel):
    """A session's STATUS file. Unknown keys are allowed and kept by statusfile."""

    model_config = ConfigDict(extra="allow")

    session: str
    status: SessionState | None = None
    current_task: str | None = None
    milestone: str | None = None
    progress: int | None = Field(default=None, ge=0, le=100)
    branch: str | None = None
    last_poll: datetime | None = None
    blocked_on: str | list[str] | None = None
    next_action: str | None = None
    tests_passed: int | None = Field(default=None, ge=0)
    tests_failed: int | None = Field(default=None, ge=0)
    completed: list[str] = Field(default_factory=list)
    epoch: int | None = Field(default=None, ge=0)  # fencing number of current_task's claim
    # own-branch mode: claims made in this file, and its logical clock
    claims: list[dict[str, Any]] = Field(default_factory=list)
    clock: int = Field(default=0, ge=0)

    @field_validator("current_task", "blocked_on", "milestone", "next_action", mode="before")
    @classmethod
    def _none_words(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("", "none", "null", "~"):
            return None
        return v

    @field_validator("completed", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            return [s.strip() for s in v.split(",") if s.strip()]
        return v

    @field_validator("last_poll")
    @classmethod
    def _zoned(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("timestamp needs a time zone (e.g. 2025-11-12T14:30:00Z)")
        return v


# Durations are finite, positive and bounded (a year): `.nan` would make leases never expire,
# `0` or `-1` would make a live task stale a second after its claim, `poll_seconds: 0` would
# make each loop hammer the remote.
_YEAR = 365 * 24 * 3600.0


class Config(BaseModel):
    """`ifcoord.yaml` at the branch root; every field has a default, every value is checked."""

    model_config = ConfigDict(extra="forbid")

    boards: list[str] = Field(default_factory=lambda: ["boards/*.md", "PHASE-*-TASK-BOARD.md", "PHASE-*.md"])
    status: list[str] = Field(
        default_factory=lambda: ["status/*.yaml", "status/*.yml", "STATUS-SESSION-*.yaml"]
    )
    exclude: list[str] = Field(default_factory=lambda: ["boards/README.md"])
    phases: list[str] = Field(default_factory=list)
    lease_seconds: float = Field(default=600.0, gt=0, le=_YEAR, allow_inf_nan=False)
    heartbeat_seconds: float = Field(default=120.0, gt=0, le=_YEAR, allow_inf_nan=False)
    poll_seconds: float = Field(default=30.0, ge=0.1, le=_YEAR, allow_inf_nan=False)
    skew_seconds: float = Field(default=120.0, ge=0, le=_YEAR, allow_inf_nan=False)
    mode: Mode = "shared"
    session_branches: str = Field(default="ifcoord-sessions/*", min_length=1)
    dashboard: bool = True

    @field_validator("boards", "status", "exclude")
    @classmethod
    def _globs(cls, v: list[str]) -> list[str]:
        for glob in v:
            if not glob.strip():
                raise ValueError("an empty glob matches nothing; remove it")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError(
                f"heartbeat_seconds ({self.heartbeat_seconds:g}) must be shorter than lease_seconds "
                f"({self.lease_seconds:g}), or every working session would look stale between heartbeats"
            )
        return self


class Snapshot(BaseModel):
    """The whole coordination state at one commit."""

    commit: str | None = None
    config: Config = Field(default_factory=Config)
    boards: list[Board] = Field(default_factory=list)
    statuses: dict[str, SessionStatus] = Field(default_factory=dict)
    status_paths: dict[str, str] = Field(default_factory=dict)  # session -> path on the branch
    diagnostics: list[Diagnostic] = Field(default_factory=list)

    def tasks(self) -> dict[str, Task]:
        """Every task by ID; the first one wins when an ID is duplicated (lint reports it)."""
        out: dict[str, Task] = {}
        for board in self.boards:
            for task in board.tasks:
                out.setdefault(task.id, task)
        return out

    def board_of(self, task_id: str) -> Board | None:
        for board in self.boards:
            if any(t.id == task_id for t in board.tasks):
                return board
        return None
