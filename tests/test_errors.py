"""One error type per kind of failure, one exit-code table, one-line messages."""

from __future__ import annotations

import pytest

from ifcoord.errors import (
    EXIT_CODES,
    ConflictError,
    IfcoordError,
    InvalidData,
    LeaseLost,
    NotReady,
    RemoteUnreachable,
    UsageError,
    exit_code_for,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (IfcoordError, 1),
        (UsageError, 2),
        (ConflictError, 3),
        (LeaseLost, 3),
        (NotReady, 4),
        (RemoteUnreachable, 5),
        (InvalidData, 6),
    ],
)
def test_each_kind_has_its_exit_code(error: type[IfcoordError], code: int) -> None:
    assert error("x").exit_code == code == exit_code_for(error("x"))
    assert code in EXIT_CODES


def test_exit_code_table_is_complete() -> None:
    assert sorted(EXIT_CODES) == [0, 1, 2, 3, 4, 5, 6]


def test_lease_lost_is_a_conflict() -> None:
    assert isinstance(LeaseLost("epoch 3 < 4"), ConflictError)


def test_unexpected_exceptions_exit_1() -> None:
    assert exit_code_for(KeyError("x")) == 1


def test_line_is_one_line_with_the_hint() -> None:
    err = ConflictError("T0.1 is claimed by session-2\n", hint="pick another task\nwith next")
    assert err.line() == "T0.1 is claimed by session-2; pick another task with next"
    assert UsageError("no session").line() == "no session"
    assert str(err) == err.message


def test_invalid_data_locates_the_problem() -> None:
    err = InvalidData("not a mapping", file="status/s.yaml", line=3, hint="fix it")
    assert err.message == "status/s.yaml:3: not a mapping"
    assert (err.file, err.line_no, err.reason) == ("status/s.yaml", 3, "not a mapping")
    assert InvalidData("too big", file="x.yaml").message == "x.yaml: too big"
    assert InvalidData("plain").message == "plain"
