"""The failures ifcoord reports, one type per kind, and the one table of exit codes.

The CLI entry point catches IfcoordError and prints `err.line()`: one line, no traceback.
"""

from __future__ import annotations

EXIT_CODES: dict[int, str] = {
    0: "done",
    1: "unexpected error",
    2: "usage error",
    3: "conflict",
    4: "not ready",
    5: "remote unreachable",
    6: "invalid data",
}


class IfcoordError(Exception):
    """A failure the user can act on: `message` says what happened and where, `hint` what to do."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        """The one-line rendering shown to the user."""
        text = " ".join(self.message.split())  # a stray newline must not break the one-line promise
        if self.hint:
            return f"{text}; {' '.join(self.hint.split())}"
        return text


class UsageError(IfcoordError):
    exit_code = 2


class ConflictError(IfcoordError):
    """Claimed by another session, or the caller is not the owner."""

    exit_code = 3


class LeaseLost(ConflictError):
    """Fencing refusal: the caller's epoch is older than the task's (it was reclaimed)."""


class NotReady(IfcoordError):
    """Dependencies unmet, or nothing to do."""

    exit_code = 4


class RemoteUnreachable(IfcoordError):
    exit_code = 5


class InvalidData(IfcoordError):
    """A board, status or config file that cannot be read.

    Give `file` (and `line` when known) to get the `file:line: reason` message; they stay
    available as attributes so a reader can turn the error into a Diagnostic.
    """

    exit_code = 6

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        file: str | None = None,
        line: int | None = None,
    ) -> None:
        self.reason = message
        self.file = file
        self.line_no = line  # `line` is the rendering method
        if file is not None:
            message = f"{file}:{line}: {message}" if line else f"{file}: {message}"
        super().__init__(message, hint=hint)


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for an exception that reached the entry point."""
    if isinstance(exc, IfcoordError):
        return exc.exit_code
    return 1
