"""What every history read shares: its times, its filter, and a store that has caught up.

A read sees every record enqueued before it began (:func:`caught_up`); a
bad time or filter value is a 400 that names the field.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agenttier_router.service import Services
from agenttier_router.storage import InvalidQuery, parse_ts
from agenttier_router.storage.filters import duration_before

from .errors import ApiError
from .models import STORAGE_OFF

__all__ = ["READ_WAIT", "build_filter", "caught_up", "days_before", "moment", "storage_notice"]

READ_WAIT = 1.0
"""Seconds a read waits for the recorder to write what was enqueued before it."""


def moment(value: str | None, name: str) -> datetime | None:
    """An RFC3339 time with a zone, or a time before now (``24h``, ``7d``), as the CLI reads."""
    if value is None:
        return None
    try:
        return duration_before(value, datetime.now(UTC)) or parse_ts(value)
    except (ValueError, OverflowError):  # "0001-01-01T00:00:00+01:00" is before year 1 in UTC
        raise ApiError(400, f"invalid request: {name}: neither an RFC3339 time with a zone "
                            f"(2026-11-26T17:00:00Z) nor a duration before now (30m, 24h, 7d, "
                            f"2w): {value[:64]!r}") from None


def days_before(moment: datetime, days: int) -> datetime:
    """``moment`` less ``days`` days, or the earliest time there is (an ``until`` in year 1)."""
    try:
        return moment - timedelta(days=days)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def build_filter(kind: Any, **fields: Any) -> Any:
    """Build a storage filter; a value it refuses is a 400 that names the field.

    A malformed cursor is an :class:`InvalidQuery`, which the error handler
    answers with 400 (as a backend's InvalidQuery is), naming ``cursor``.
    """
    try:
        return kind(**{k: v for k, v in fields.items() if v is not None})
    except InvalidQuery:
        raise
    except ValueError as error:
        raise ApiError(400, f"invalid request: {error}") from None


def storage_notice(state: Services) -> str | None:
    """What a history answer says while storage is off (it is empty then)."""
    return None if state.storage.enabled else STORAGE_OFF


def caught_up(state: Services) -> None:
    """Wait (at most :data:`READ_WAIT`) until the recorder has written what it was given."""
    state.recorder.wait_written(READ_WAIT)
