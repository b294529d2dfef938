"""Updating a Sandbox object (``PATCH /sandboxes/{id}``), and reading back what an update set.

An update writes, with one full Update carrying the object's resourceVersion:

- ``spec.idleTimeout`` in Go's canonical form (``30m0s``); the controller
  enforces it from then on;
- ``spec.resources``: the change merged, quantity by quantity, over what the
  sandbox asks now (its own ``spec.resources``, else its template's), so that
  the controller, which takes a sandbox's ``resources`` whole, loses nothing;
- ``metadata.labels`` and ``metadata.annotations``, merged (null removes a key).

**When new resources count.** The controller builds a pod from the spec only
when it (re)starts one, so the running pod keeps the old resources, and so
does the cost. When resources change, the plane also writes two annotations:

- ``agenttier.io/resources-before``: the ``spec.resources`` the current run
  started with (JSON; ``null`` for its template's), kept from the first of
  several changes made during one run;
- ``agenttier.io/resources-run``: ``status.lastActivityTimestamp``, which the
  controller sets on each entry into Running, at the time of the change.

The rule: while ``status.lastActivityTimestamp`` is still the one of the
change (no run has started since: the run it was made in goes on, or the
sandbox is stopped, or it has not run yet), the sandbox is priced
(``Sandbox.template``) from ``resources-before`` and ``restart_pending`` is
true; once a run starts (a new ``lastActivityTimestamp``), it is priced from
``spec.resources``, in that run and after it. This relies, as transition ids
do (:mod:`.objects`), on a pod never starting twice within one second.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..base import Resources, SandboxChange, Template
from ..changes import (
    format_go_duration,
    merge_map,
    merge_resources,
    parse_go_duration,
    resources_of,
    visible,
)

__all__ = ["BEFORE_ANNOTATION", "RUN_ANNOTATION", "apply_change", "running_spec",
           "update_fields"]

BEFORE_ANNOTATION = "agenttier.io/resources-before"
"""The ``spec.resources`` (JSON) the current run started with, while a change is pending."""
RUN_ANNOTATION = "agenttier.io/resources-run"
"""The run (``status.lastActivityTimestamp``) during which resources last changed."""


def _section(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _resources(raw: object) -> Resources | None:
    """Our view of a ``ResourceRequirements`` object (numbers as strings), or None."""
    if not isinstance(raw, dict):
        return None
    parts = {}
    for key in ("requests", "limits"):
        section = raw.get(key)
        parts[key] = MappingProxyType({str(k): str(v) for k, v in section.items()}
                                      if isinstance(section, dict) else {})
    return Resources(requests=parts["requests"], limits=parts["limits"])


def _run_of(obj: Mapping[str, Any]) -> str:
    stamp = _section(obj, "status").get("lastActivityTimestamp")
    return stamp if isinstance(stamp, str) else ""


def _pending(obj: Mapping[str, Any]) -> bool:
    """Whether a resources change waits for the sandbox's next start (see the module doc)."""
    annotations = _section(_section(obj, "metadata"), "annotations")
    return (BEFORE_ANNOTATION in annotations
            and annotations.get(RUN_ANNOTATION, "") == _run_of(obj))


def running_spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object's spec with the resources its current run started with (what it costs)."""
    spec = _section(obj, "spec")
    if not _pending(obj):
        return spec
    raw = _section(_section(obj, "metadata"), "annotations").get(BEFORE_ANNOTATION)
    try:
        before = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return spec
    running = {k: v for k, v in spec.items() if k != "resources"}
    if isinstance(before, dict):
        running["resources"] = before
    return running


def update_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`~..base.Sandbox` fields an update sets, as the object shows them."""
    metadata = _section(obj, "metadata")
    spec = _section(obj, "spec")
    idle = spec.get("idleTimeout")
    seconds = parse_go_duration(idle) if isinstance(idle, str) else None
    labels = _section(metadata, "labels")
    annotations = _section(metadata, "annotations")
    resources = _resources(spec.get("resources"))
    return {
        "labels": MappingProxyType(visible({str(k): str(v) for k, v in labels.items()})),
        "annotations": MappingProxyType(
            visible({str(k): str(v) for k, v in annotations.items()})),
        "idle_timeout": seconds if seconds is not None and seconds > 0 else None,
        "resources": resources,
        "restart_pending": _pending(obj) and running_spec(obj).get(
            "resources") != spec.get("resources"),
    }


def apply_change(obj: dict[str, Any], change: SandboxChange, template: Template,
                 template_resources: object) -> None:
    """Write a checked ``change`` into ``obj`` for a full Update (see the module doc).

    ``template_resources`` is the ``resources`` of the sandbox's resolved template,
    which stand for a ``spec.resources`` it does not have (``template``'s requests
    when there are none).
    """
    metadata = obj.setdefault("metadata", {})
    spec = obj.setdefault("spec", {})
    if change.idle_timeout is not None:
        spec["idleTimeout"] = format_go_duration(change.idle_timeout)
    if change.labels is not None:
        metadata["labels"] = merge_map(_section(metadata, "labels"), change.labels, "labels")
        if not metadata["labels"]:
            del metadata["labels"]
    annotations = _section(metadata, "annotations")
    if change.annotations is not None:
        kept = {k: v for k, v in annotations.items() if k not in visible(annotations)}
        mine = merge_map(visible(annotations), change.annotations, "annotations")
        annotations = {**kept, **mine}
    if change.resources is not None:
        if not _pending(obj):  # the first change since the last start: remember how it started
            annotations[BEFORE_ANNOTATION] = json.dumps(spec.get("resources"),
                                                        separators=(",", ":"))
        annotations[RUN_ANNOTATION] = _run_of(obj)
        current = (_resources(spec.get("resources")) or _resources(template_resources)
                   or resources_of(template.cpu, template.memory_gib))
        spec["resources"] = merge_resources(current, change.resources).as_dict()
    if annotations:
        merge_map({}, annotations, "annotations")  # the size limit, our own ones included
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
