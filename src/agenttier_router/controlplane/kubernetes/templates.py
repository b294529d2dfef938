"""Cluster templates: ClusterSandboxTemplates and SandboxTemplates, ``inheritsFrom`` resolved.

The Router needs of a template only what prices a sandbox and describes it:
its resource requests, image and description. Those are resolved as the
controller resolves them (facts, section 3): the chain of ``inheritsFrom`` is
followed up to 10 templates; an empty kind means ``SandboxTemplate`` and an
empty namespace means the *sandbox's* namespace; then, root first, a child's
non-nil ``resources`` or ``image`` replaces its parent's whole object and a
non-empty ``description`` wins. A Sandbox's own ``spec.resources`` and
``spec.image`` replace its template's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..base import InvalidRequest, Template
from ..templates import parse_cpu, parse_memory_gib

__all__ = ["CLUSTER_KIND", "MAX_DEPTH", "NAMESPACED_KIND", "effective_template", "resolve"]

CLUSTER_KIND = "ClusterSandboxTemplate"
NAMESPACED_KIND = "SandboxTemplate"
MAX_DEPTH = 10

Lookup = Callable[[str, str, str], Mapping[str, Any] | None]
"""(kind, namespace, name) -> the template object, or None when there is none."""


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def resolve(kind: str, name: str, namespace: str, lookup: Lookup) -> dict[str, Any]:
    """The merged spec (resources, image, storage, description, mode) of a template chain.

    ``namespace`` is the sandbox's. Raises :class:`InvalidRequest` with the
    controller's words for a missing template, a cycle, or a chain that is too long.
    """
    chain: list[Mapping[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    ref: Mapping[str, Any] | None = {"kind": kind, "name": name}
    while ref is not None:
        ref_kind = str(ref.get("kind") or NAMESPACED_KIND)
        ref_name = str(ref.get("name") or "")
        ref_namespace = "" if ref_kind == CLUSTER_KIND else str(ref.get("namespace") or namespace)
        key = (ref_kind, ref_namespace, ref_name)
        if key in seen:
            raise InvalidRequest("circular template inheritance detected")
        seen.add(key)
        if len(chain) >= MAX_DEPTH:
            raise InvalidRequest(f"template inheritance chain exceeds maximum depth of {MAX_DEPTH}")
        obj = lookup(ref_kind, ref_namespace, ref_name)
        if obj is None:
            where = ref_name if ref_kind == CLUSTER_KIND else f"{ref_namespace}/{ref_name}"
            raise InvalidRequest(f"{ref_kind} {where} not found")
        chain.append(obj)
        parent = _spec(obj).get("inheritsFrom")
        ref = parent if isinstance(parent, dict) else None
    merged: dict[str, Any] = {}
    for obj in reversed(chain):  # root first, each child on top
        spec = _spec(obj)
        for whole in ("resources", "image", "storage"):
            if spec.get(whole) is not None:
                merged[whole] = spec[whole]
        for text in ("description", "mode"):
            if spec.get(text):
                merged[text] = spec[text]
    return merged


def _requests(resources: object) -> tuple[float, float]:
    """vCPUs and GiB requested (a limit stands for a missing request, as Kubernetes does)."""
    if not isinstance(resources, dict):
        return 0.0, 0.0
    requests = resources.get("requests")
    limits = resources.get("limits")
    requests = requests if isinstance(requests, dict) else {}
    limits = limits if isinstance(limits, dict) else {}
    cpu = parse_cpu(requests.get("cpu", limits.get("cpu", 0))) or 0.0
    memory = parse_memory_gib(requests.get("memory", limits.get("memory", 0))) or 0.0
    # A number of memory from the API server is bytes, not GiB as in our templates file.
    raw_memory = requests.get("memory", limits.get("memory"))
    if isinstance(raw_memory, int | float) and not isinstance(raw_memory, bool):
        memory = float(raw_memory) / 2**30
    return max(cpu, 0.0), max(memory, 0.0)


def effective_template(name: str, merged: Mapping[str, Any],
                       sandbox_spec: Mapping[str, Any] | None = None) -> Template:
    """The :class:`Template` a sandbox runs with: its template's merged spec under its own
    ``resources`` and ``image`` (either may be None: a template on its own)."""
    spec = sandbox_spec or {}
    resources = spec.get("resources") if spec.get("resources") is not None else \
        merged.get("resources")
    image = spec.get("image") if spec.get("image") is not None else merged.get("image")
    cpu, memory = _requests(resources)
    repository = image.get("repository") if isinstance(image, dict) else ""
    description = merged.get("description")
    return Template(name=name, cpu=cpu, memory_gib=memory,
                    description=description if isinstance(description, str) else "",
                    image=repository if isinstance(repository, str) else "")

