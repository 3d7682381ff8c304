"""Typed models of what lives on the coordination branch: tasks, boards, session status, config.

Pure data; parsing lives in boardfile/statusfile/config, decisions in scheduler/ops/leases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

State = Literal["open", "claimed", "in_progress", "blocked", "review", "done", "cancelled"]
STATES: tuple[State, ...] = ("open", "claimed", "in_progress", "blocked", "review", "done", "cancelled")
Kind = Literal["primary", "filler"]
SessionState = Literal["polling", "working", "blocked", "idle", "offline", "done"]
Mode = Literal["shared", "own-branch"]
Severity = Literal["error", "warning", "note"]

SESSION_NAME_PATTERN = r"^[a-z0-9._-]{1,64}$"


class Milestone(BaseModel):
    """A checkbox item under a task's `**Milestones:**` label."""

    text: str  # the item text after the checkbox, e.g. "25% - Test scaffolding"
    percent: int | None = None  # the leading percentage when the item has one
    done: bool = False
    line: int  # 1-based line in the board file


class FieldLine(BaseModel):
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
    progress: int | None = None
    branch: str | None = None
    last_poll: datetime | None = None
    blocked_on: str | list[str] | None = None
    next_action: str | None = None
    tests_passed: int | None = None
    tests_failed: int | None = None
    completed: list[str] = Field(default_factory=list)
    epoch: int | None = None  # fencing number of current_task's claim
    # own-branch mode: claims made in this file, and its logical clock
    claims: list[dict[str, Any]] = Field(default_factory=list)
    clock: int = 0

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


class Config(BaseModel):
    """`ifcoord.yaml` at the branch root; every field has a default."""

    model_config = ConfigDict(extra="forbid")

    boards: list[str] = Field(default_factory=lambda: ["boards/*.md", "PHASE-*-TASK-BOARD.md", "PHASE-*.md"])
    status: list[str] = Field(
        default_factory=lambda: ["status/*.yaml", "status/*.yml", "STATUS-SESSION-*.yaml"]
    )
    exclude: list[str] = Field(default_factory=lambda: ["boards/README.md"])
    phases: list[str] = Field(default_factory=list)
    lease_seconds: float = 600.0
    heartbeat_seconds: float = 120.0
    poll_seconds: float = 30.0
    skew_seconds: float = 120.0
    mode: Mode = "shared"
    session_branches: str = "ifcoord-sessions/*"
    dashboard: bool = True


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
