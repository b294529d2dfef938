"""Checking an update to a sandbox (``PATCH /sandboxes/{id}``), and applying it to what a
sandbox has, the same way on every control plane.

:func:`change_from` turns the request's fields into a :class:`~.base.SandboxChange`,
or raises :class:`InvalidChange` naming the field::

    change = change_from(idle_timeout="1h30m", resources={"requests": {"cpu": "1"}},
                         labels={"team": "ml", "old": None}, annotations=None)
    change.idle_timeout          # 5400.0
    merge_resources(current, change.resources)   # per quantity, over what it asks now

The rules are Kubernetes' own, so that what the local plane accepts the
Kubernetes one can write:

- ``idleTimeout``: a Go duration > 0 (``"30m"``, ``"1h30m"``, ``"90s"``).
- ``resources``: ``requests`` and ``limits`` of ``cpu`` and ``memory``, each a
  quantity > 0 (``"500m"``, ``"2Gi"``); a request may not exceed its limit.
- label keys and annotation keys: qualified names (an optional DNS subdomain
  prefix and ``/``, then 1-63 characters ``[A-Za-z0-9-_.]``, alphanumeric at
  both ends); label values: at most 63 such characters, or empty; all the
  annotations together at most 256 KiB. Keys under ``agenttier.io/`` are the
  platform's (``agenttier.io/action: stop`` stops a sandbox) and refused.
- a value of ``null`` in labels or annotations removes that key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction

from .base import InvalidRequest, Resources, SandboxChange
from .templates import parse_cpu, parse_memory_gib

__all__ = [
    "MAX_ANNOTATIONS_BYTES",
    "RESTART_MESSAGE",
    "InvalidChange",
    "change_from",
    "checked",
    "format_go_duration",
    "merge_map",
    "merge_resources",
    "parse_go_duration",
    "requests_of",
    "resources_of",
    "visible",
]

RESTART_MESSAGE = "resource changes take effect after the sandbox is stopped and resumed"
"""What an update that changes resources says (the reply's ``message``)."""

MAX_ANNOTATIONS_BYTES = 256 * 1024
"""Kubernetes' limit on all of an object's annotations together (keys and values)."""

_RESERVED_DOMAIN = "agenttier.io"
_RESERVED = _RESERVED_DOMAIN + "/"
_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_PREFIX = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_DURATION = re.compile(r"(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": Fraction(1, 10**9), "us": Fraction(1, 10**6), "µs": Fraction(1, 10**6),
                 "μs": Fraction(1, 10**6), "ms": Fraction(1, 1000), "s": Fraction(1),
                 "m": Fraction(60), "h": Fraction(3600)}
_MAX_DURATION = Fraction(2**63 - 1, 10**9)  # Go's time.Duration is int64 nanoseconds
_RESOURCE_NAMES = ("cpu", "memory")


class InvalidChange(InvalidRequest):
    """An update the plane refuses; ``field`` names the request field at fault."""

    def __init__(self, field: str, message: str) -> None:
        # Nothing to change is no one field's fault: its message is the spec's, as is.
        super().__init__(message if field == "request" else f"invalid request: {field}: {message}")
        self.field = field
        self.reason = message


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration string (``"1h30m"`` is 5400.0), or None if it is not one.

    Go's syntax: one or more decimal numbers each with a unit (ns, us, ms, s, m,
    h), with an optional sign in front; ``"0"`` alone is zero.
    """
    if not isinstance(text, str):
        return None
    body = text[1:] if text[:1] in "+-" else text
    sign = -1 if text[:1] == "-" else 1
    if body == "0":
        return 0.0
    if not body or _DURATION.fullmatch(body) is None:
        return None
    total = sum((Fraction(number) * _UNIT_SECONDS[unit]
                 for number, unit in _DURATION_PART.findall(body)), Fraction(0))
    if total > _MAX_DURATION:
        return None
    return float(sign * total)


def format_go_duration(seconds: float) -> str:
    """A duration in Go's canonical form, as Kubernetes writes it back (``1800`` is ``30m0s``)."""
    nanos = round(Fraction(seconds) * 10**9)
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 10**9:  # under a second: the largest unit that keeps it >= 1
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if nanos >= size:
                return sign + _decimal(Fraction(nanos, size)) + unit
    hours, rest = divmod(nanos, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = _decimal(Fraction(rest, 10**9)) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _decimal(value: Fraction) -> str:
    whole, part = divmod(value, 1)
    if not part:
        return str(whole)
    digits = f"{float(part):.9f}"[2:].rstrip("0")
    return f"{whole}.{digits}"


def _qualified_name(key: object, field: str) -> str:
    """Refuse a key that is not a Kubernetes qualified name, or is the platform's own."""
    if not isinstance(key, str) or not key:
        raise InvalidChange(field, f"keys must be non-empty strings (got {key!r})")
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or _PREFIX.fullmatch(prefix) is None):
        raise InvalidChange(field, f"key {key!r}: the prefix before '/' must be a DNS subdomain "
                                   "(lowercase letters, digits, '-' and '.', at most 253)")
    if _NAME.fullmatch(name) is None:
        raise InvalidChange(field, f"key {key!r}: the name must be 1-63 characters of "
                                   "letters, digits, '-', '_' and '.', starting and ending "
                                   "with a letter or digit")
    if _reserved(key):
        raise InvalidChange(field, f"key {key!r}: keys under {_RESERVED} are reserved for the "
                                   "platform")
    return key


def _labels(raw: object) -> dict[str, str | None]:
    if not isinstance(raw, Mapping):
        raise InvalidChange("labels", "must be an object of key -> value")
    checked: dict[str, str | None] = {}
    for key, value in raw.items():
        _qualified_name(key, "labels")
        if value is not None and (not isinstance(value, str) or (
                value and _NAME.fullmatch(value) is None)):
            raise InvalidChange("labels", f"value of {key!r}: at most 63 characters of letters, "
                                          "digits, '-', '_' and '.', starting and ending with a "
                                          f"letter or digit, or empty (got {value!r})")
        checked[key] = value
    return checked


def _annotations(raw: object) -> dict[str, str | None]:
    if not isinstance(raw, Mapping):
        raise InvalidChange("annotations", "must be an object of key -> value")
    checked: dict[str, str | None] = {}
    for key, value in raw.items():
        _qualified_name(key, "annotations")
        if value is not None and not isinstance(value, str):
            raise InvalidChange("annotations", f"value of {key!r} must be a string or null")
        checked[key] = value
    return checked


def _quantity(value: object, name: str, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidChange("resources", f"{where}.{name} must be a quantity string such as "
                                         f"\"500m\" or \"2Gi\" (got {value!r})")
    text = str(value)
    parsed = parse_cpu(text) if name == "cpu" else parse_memory_gib(text)
    if parsed is None or not math.isfinite(parsed) or parsed <= 0:
        example = "\"500m\" or \"2\"" if name == "cpu" else "\"512Mi\" or \"2Gi\""
        raise InvalidChange("resources", f"{where}.{name}: {text!r} is not a Kubernetes "
                                         f"quantity > 0 (such as {example})")
    return text


def _resources(raw: object) -> Resources:
    if not isinstance(raw, Mapping):
        raise InvalidChange("resources", "must be an object with requests and/or limits")
    unknown = sorted(str(k) for k in raw if k not in ("requests", "limits"))
    if unknown:
        raise InvalidChange("resources", f"unknown field(s) {unknown}; allowed: requests, limits")
    parts: dict[str, dict[str, str]] = {}
    for where in ("requests", "limits"):
        section = raw.get(where)
        if section is None:
            parts[where] = {}
            continue
        if not isinstance(section, Mapping):
            raise InvalidChange("resources", f"{where} must be an object of name -> quantity")
        others = sorted(str(k) for k in section if k not in _RESOURCE_NAMES)
        if others:
            raise InvalidChange("resources", f"{where}: unknown resource(s) {others}; "
                                             "allowed: cpu, memory")
        parts[where] = {name: _quantity(value, name, where) for name, value in section.items()}
    return Resources(requests=parts["requests"], limits=parts["limits"])


def change_from(*, idle_timeout: object = None, resources: object = None, labels: object = None,
                annotations: object = None) -> SandboxChange:
    """Check an update's fields and build the change; None means absent, ``{}`` present.

    Raises :class:`InvalidChange` (a 400) naming the field: for nothing to change,
    a bad duration, quantity, key or value.
    """
    if idle_timeout is None and resources is None and labels is None and annotations is None:
        raise InvalidChange("request", "at least one of idleTimeout, resources, labels, "
                                       "annotations is required")
    seconds: float | None = None
    if idle_timeout is not None:
        parsed = parse_go_duration(idle_timeout) if isinstance(idle_timeout, str) else None
        if parsed is None or parsed <= 0:
            raise InvalidChange("idleTimeout", "must be a Go duration > 0, such as \"30m\" or "
                                               f"\"1h30m\" (got {idle_timeout!r})")
        seconds = parsed
    return SandboxChange(
        idle_timeout=seconds,
        resources=_resources(resources) if resources is not None else None,
        labels=_labels(labels) if labels is not None else None,
        annotations=_annotations(annotations) if annotations is not None else None,
    )


def checked(change: SandboxChange) -> SandboxChange:
    """``change`` if each of its fields passes :func:`change_from`'s checks (a plane's guard
    against a caller that built one by hand), else :class:`InvalidChange`."""
    if not isinstance(change, SandboxChange):
        raise InvalidChange("request", f"expected a SandboxChange, got {type(change).__name__}")
    seconds = change.idle_timeout
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float)
                                or not math.isfinite(seconds) or seconds <= 0
                                or seconds > _MAX_DURATION):
        raise InvalidChange("idleTimeout", f"must be a number of seconds > 0 (got {seconds!r})")
    rebuilt = change_from(
        idle_timeout="1s" if seconds is not None else None,  # checked above, as seconds
        resources=change.resources.as_dict() if change.resources is not None else None,
        labels=change.labels, annotations=change.annotations)
    return SandboxChange(idle_timeout=seconds, resources=rebuilt.resources,
                         labels=rebuilt.labels, annotations=rebuilt.annotations)


def resources_of(cpu: float, memory_gib: float) -> Resources:
    """A template's requests as quantities (memory rounded to the MiB): ``0.5, 1.0`` is
    ``{"cpu": "500m", "memory": "1Gi"}``."""
    millis = round(cpu * 1000)
    mib = round(memory_gib * 1024)
    return Resources(requests={
        "cpu": str(millis // 1000) if millis % 1000 == 0 else f"{millis}m",
        "memory": f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi",
    })


def merge_map(current: Mapping[str, str], change: Mapping[str, str | None] | None,
              field: str) -> dict[str, str]:
    """``current`` with ``change`` merged in (None removes a key); annotations are size-checked."""
    merged = dict(current)
    for key, value in (change or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if field == "annotations":
        size = sum(len(k.encode()) + len(v.encode()) for k, v in merged.items())
        if size > MAX_ANNOTATIONS_BYTES:
            raise InvalidChange("annotations", f"all annotations together must be at most "
                                               f"{MAX_ANNOTATIONS_BYTES} bytes (would be {size})")
    return merged


def merge_resources(current: Resources, change: Resources) -> Resources:
    """``change``'s quantities over ``current``'s, one by one; a request may not exceed its
    limit (Kubernetes refuses such a pod), which raises :class:`InvalidChange`."""
    requests = {**current.requests, **change.requests}
    limits = {**current.limits, **change.limits}
    for name in _RESOURCE_NAMES:
        if name in requests and name in limits:
            parse = parse_cpu if name == "cpu" else parse_memory_gib
            asked, most = parse(requests[name]), parse(limits[name])
            if asked is not None and most is not None and asked > most:
                raise InvalidChange("resources", f"requests.{name} ({requests[name]}) may not "
                                                 f"exceed limits.{name} ({limits[name]})")
    return Resources(requests=requests, limits=limits)


def requests_of(resources: Resources, cpu: float, memory_gib: float) -> tuple[float, float]:
    """The vCPUs and GiB ``resources`` request: a limit stands for a missing request (as in
    Kubernetes), and ``cpu``/``memory_gib`` (the template's) for both missing."""
    def pick(name: str, fallback: float) -> float:
        parse = parse_cpu if name == "cpu" else parse_memory_gib
        for section in (resources.requests, resources.limits):
            if name in section:
                value = parse(section[name])
                if value is not None:
                    return value
        return fallback

    return pick("cpu", cpu), pick("memory", memory_gib)


def _reserved(key: str) -> bool:
    prefix = key.rpartition("/")[0]
    return prefix == _RESERVED_DOMAIN or prefix.endswith("." + _RESERVED_DOMAIN)


def visible(entries: Mapping[str, str]) -> dict[str, str]:
    """Labels or annotations without the platform's own (``agenttier.io/...``)."""
    return {k: v for k, v in entries.items() if not _reserved(k)}
