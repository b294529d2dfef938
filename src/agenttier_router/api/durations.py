"""Go's duration strings (``time.ParseDuration``), as the SDK sends them for ``expiresIn``.

::

    parse_go_duration("24h")      # timedelta(days=1)
    parse_go_duration("1h30m")    # timedelta(hours=1, minutes=30)
    parse_go_duration("1.5s")     # timedelta(seconds=1.5)

A sign, then one or more ``<number><unit>`` with units ``ns``, ``us`` (``µs``,
``μs``), ``ms``, ``s``, ``m`` and ``h``; ``"0"`` alone is zero. Like Go, it
refuses anything past about 292 years (an int64 of nanoseconds). Sub-microsecond
parts are rounded up to the microsecond, the unit of :class:`~datetime.timedelta`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

__all__ = ["parse_go_duration"]

_NANOS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
          "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_MAX_NANOS = 2**63 - 1


def parse_go_duration(text: str) -> timedelta:
    """Parse ``text`` as Go's ``time.ParseDuration`` does; ``ValueError`` if it is not one."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"invalid duration {text!r}")
    sign = -1 if text[0] == "-" else 1
    body = text[1:] if text[0] in "+-" else text
    if body == "0":
        return timedelta(0)
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    nanos = Decimal(0)
    position = 0
    while position < len(body):
        match = _PART.match(body, position)
        if match is None:
            raise ValueError(f"invalid duration {text!r}")
        try:
            nanos += Decimal(match.group(1)) * _NANOS[match.group(2)]
        except InvalidOperation:  # pragma: no cover - the pattern only lets numbers through
            raise ValueError(f"invalid duration {text!r}") from None
        if nanos > _MAX_NANOS:
            raise ValueError(f"invalid duration {text!r}: too long")
        position = match.end()
    # Rounded up to the microsecond, so that "1ns" stays a positive duration.
    return sign * timedelta(microseconds=-(-int(nanos) // 1_000))
