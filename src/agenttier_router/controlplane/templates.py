"""Sandbox templates: the defaults that ship with the Router, and a loader for a templates file.

A templates file is YAML (or JSON, which YAML reads too) holding a list::

    - name: big
      cpu: 2            # vCPUs: a number, or a Kubernetes quantity such as "500m"
      memory: 4Gi       # a Kubernetes quantity (1Gi, 256Mi, 512M, 2G), or a number of GiB
      description: For builds
    - name: minimal     # a file's entry replaces the default of the same name
      cpu: 0.5
      memory: 512Mi

::

    templates = load_templates(Path("templates.yaml"))   # the defaults, merged with the file's
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .base import InvalidRequest, Template

__all__ = ["DEFAULT_TEMPLATES", "load_templates", "parse_cpu", "parse_memory_gib"]

DEFAULT_TEMPLATES: Mapping[str, Template] = MappingProxyType({
    "general-coding": Template(
        name="general-coding", cpu=0.5, memory_gib=1.0,
        description="General coding: 0.5 vCPU, 1 GiB.",
    ),
    "minimal": Template(
        name="minimal", cpu=0.25, memory_gib=0.25,
        description="Smallest footprint: 0.25 vCPU, 256 MiB.",
    ),
})
"""The templates that ship with the Router, by name (read-only)."""

_KEYS = frozenset({"name", "cpu", "memory", "description", "image"})

# Kubernetes quantities: a decimal number with either an SI suffix or an exponent.
_QUANTITY = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)|[eE](?P<exponent>[+-]?[0-9]{1,3}))?"
)
_SUFFIX = {
    "": Fraction(1), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9),
    "T": Fraction(10**12), "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30),
    "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}
_GIB = 2**30


def _quantity(text: str) -> tuple[Fraction, str] | None:
    """Parse a Kubernetes quantity exactly: ``(value, suffix)``, or None if it is not one."""
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        return None
    value = Fraction(match["number"])
    if match["exponent"] is not None:
        value *= Fraction(10) ** int(match["exponent"])
    suffix = match["suffix"] or ""
    return value * _SUFFIX[suffix], suffix


def _number(value: object) -> float | None:
    """A finite int or float (not a bool) as a float, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def parse_cpu(value: object) -> float | None:
    """vCPUs from a number or a quantity string (``"500m"`` is 0.5), or None if invalid."""
    if isinstance(value, str):
        parsed = _quantity(value)
        return float(parsed[0]) if parsed is not None else None
    return _number(value)


def parse_memory_gib(value: object) -> float | None:
    """GiB from a number of GiB or a quantity string of bytes, or None if invalid."""
    if isinstance(value, str):
        parsed = _quantity(value)
        # "m" is milli-bytes: always a typo for "Mi" in a memory request, so refuse it.
        if parsed is None or parsed[1] == "m":
            return None
        return float(parsed[0] / _GIB)
    return _number(value)


def _template(entry: object, where: str) -> Template:
    """Check one file entry and build its :class:`Template`; ``where`` names it in errors."""
    if not isinstance(entry, dict):
        raise InvalidRequest(f"{where}: must be a mapping with name, cpu and memory")
    unknown = sorted(str(key) for key in entry if key not in _KEYS)
    if unknown:
        raise InvalidRequest(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name or name != name.strip():
        raise InvalidRequest(
            f"{where}: name is required: a non-empty string without surrounding spaces"
        )
    where = f"{where} ({name!r})"
    cpu = parse_cpu(entry.get("cpu"))
    if cpu is None or cpu <= 0:
        raise InvalidRequest(
            f"{where}: cpu must be a number of vCPUs > 0 (got {entry.get('cpu')!r})"
        )
    memory = parse_memory_gib(entry.get("memory"))
    if memory is None or memory <= 0:
        raise InvalidRequest(
            f"{where}: memory must be a quantity such as 1Gi, 256Mi or 512M, or a number of "
            f"GiB, > 0 (got {entry.get('memory')!r})"
        )
    text: dict[str, str] = {}
    for key in ("description", "image"):
        value: Any = entry.get(key, "")
        if not isinstance(value, str):
            raise InvalidRequest(f"{where}: {key} must be a string (got {value!r})")
        text[key] = value
    return Template(name=name, cpu=cpu, memory_gib=memory, **text)


def load_templates(path: Path | str) -> dict[str, Template]:
    """Read a templates file and return the defaults merged with its templates, by name.

    A file's template replaces the default of the same name, or adds a new one.
    Raises :class:`InvalidRequest`, naming the file and the entry, when the file
    cannot be read or parsed, is not a list, or holds a bad or duplicate entry.
    """
    try:
        with open(path, encoding="utf-8") as file:
            data = yaml.safe_load(file)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InvalidRequest(f"templates file {path}: cannot read it: {error}") from error
    if not isinstance(data, list):
        raise InvalidRequest(
            f"templates file {path}: must hold a list of templates, not {type(data).__name__}"
        )
    loaded: dict[str, Template] = {}
    for index, entry in enumerate(data):
        template = _template(entry, f"templates file {path}: entry {index}")
        if template.name in loaded:
            raise InvalidRequest(
                f"templates file {path}: entry {index}: duplicate name {template.name!r}"
            )
        loaded[template.name] = template
    return {**DEFAULT_TEMPLATES, **loaded}
