"""`ifcoord log`: the history of operations, read back from commit trailers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

TRAILER_PREFIX = "Ifcoord-"


@dataclass(frozen=True)
class LogEntry:
    commit: str
    time: datetime
    subject: str
    op: str | None
    task: str | None
    session: str | None
    epoch: int | None
    forced: bool
    op_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "time": self.time.isoformat(),
            "subject": self.subject,
            "op": self.op,
            "task": self.task,
            "session": self.session,
            "epoch": self.epoch,
            "forced": self.forced,
            "op_id": self.op_id,
        }


def parse_trailers(message: str) -> dict[str, str]:
    """The `Ifcoord-*` trailers of a commit message's last paragraph."""
    last = message.strip().split("\n\n")[-1]
    out = {}
    for line in last.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.startswith(TRAILER_PREFIX):
            out[key[len(TRAILER_PREFIX) :].lower()] = value.strip()
    return out


def entry_from(commit: str, unix_time: int, message: str, made_by_ifcoord: bool = True) -> LogEntry:
    """A log entry; trailers count only on a commit ifcoord made (anyone can type them into a
    message of their own: such a commit is listed as a person's edit)."""
    trailers = parse_trailers(message) if made_by_ifcoord else {}
    epoch = trailers.get("epoch")
    return LogEntry(
        commit=commit,
        time=datetime.fromtimestamp(unix_time, timezone.utc),
        subject=message.strip().splitlines()[0] if message.strip() else "",
        op=trailers.get("op"),
        task=trailers.get("task"),
        session=trailers.get("session"),
        epoch=int(epoch) if epoch and epoch.isdigit() else None,
        forced=trailers.get("forced") == "true",
        op_id=trailers.get("op-id"),
    )


def read_log(  # type: ignore[no-untyped-def]
    store, tip: str | None, task: str | None = None, limit: int = 200, session_tips: Iterable[str] = ()
) -> list[LogEntry]:
    """Newest first. The coordination branch's commits, people's edits included (op None),
    and, in own-branch mode, the ifcoord commits on the session branches. git does the
    filtering and the limit, so a long history costs only what is shown."""
    grep = "^Ifcoord-Task: " + task.replace(".", "\\.") + "$" if task else None
    rows = list(store.history(tip, max_count=limit, grep=grep)) if tip else []
    tips = list(session_tips)
    if tips:
        rows += store.history(*tips, max_count=limit, grep=grep or "^Ifcoord-Op: ")
    entries = [entry_from(sha, ts, body, made) for sha, ts, body, made in rows]
    if task:
        entries = [e for e in entries if e.task and e.task.lower() == task.lower()]
    entries.sort(key=lambda e: e.time, reverse=True)
    return entries[:limit]


def find_operation(store, tip: str | None, op_id: str, session_tips: Iterable[str] = ()) -> list[LogEntry]:  # type: ignore[no-untyped-def]
    """The commits carrying `Ifcoord-Op-Id: op_id` (one when it landed, none when it did not)."""
    import re

    if not re.fullmatch(r"[0-9a-f]{8,64}", op_id):
        return []
    tips = [t for t in (tip, *session_tips) if t]
    if not tips:
        return []
    rows = store.history(*tips, grep=f"^Ifcoord-Op-Id: {op_id}$")
    return [e for e in (entry_from(sha, ts, body) for sha, ts, body in rows) if e.op_id == op_id]
