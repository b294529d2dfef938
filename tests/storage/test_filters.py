"""Filters are checked when they are built; cursors are opaque and checked too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agenttier_router.storage import (
    AuditFilter,
    CostFilter,
    InvalidQuery,
    SandboxEventFilter,
    StorageError,
)
from agenttier_router.storage.filters import decode_cursor, encode_cursor

FILTERS = [AuditFilter, SandboxEventFilter, CostFilter]


@pytest.mark.parametrize("cls", FILTERS)
def test_default_limit_is_100(cls: type) -> None:
    assert cls().limit == 100


@pytest.mark.parametrize("cls", FILTERS)
@pytest.mark.parametrize("limit", [0, -1, 1001, 5000])
def test_limit_out_of_range(cls: type, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        cls(limit=limit)


@pytest.mark.parametrize("cls", FILTERS)
def test_limit_bounds_are_accepted(cls: type) -> None:
    assert cls(limit=1).limit == 1
    assert cls(limit=1000).limit == 1000


@pytest.mark.parametrize("field", ["since", "until"])
def test_naive_window_is_rejected(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        AuditFilter(**{field: datetime(2026, 1, 1)})


def test_empty_window_is_rejected() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="before"):
        CostFilter(since=at, until=at)
    CostFilter(since=at, until=at + timedelta(microseconds=1))


@pytest.mark.parametrize(
    "cursor", ["", "not-a-cursor", "!!!", encode_cursor("2026-01-01T00:00:00Z", 5)[:-3] + "xyz"]
)
def test_malformed_cursor_is_invalid_query(cursor: str) -> None:
    with pytest.raises(InvalidQuery) as raised:
        AuditFilter(cursor=cursor)
    assert isinstance(raised.value, StorageError)


def test_cursor_round_trip() -> None:
    ts = "2026-11-26T17:00:00.123456Z"
    assert decode_cursor(encode_cursor(ts, 42)) == (ts, 42)
    SandboxEventFilter(cursor=encode_cursor(ts, 42))
