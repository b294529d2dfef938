"""Control planes: where sandboxes live and go through their lifecycle.

:mod:`.base` is the contract the HTTP API drives; :mod:`.local` runs sandboxes
in the Router's own process (no isolation: evaluation only); :mod:`.templates`
holds the default templates and reads a templates file.
"""

from __future__ import annotations

from .base import (
    ControlPlane,
    ControlPlaneError,
    ControlPlaneUnavailable,
    EventHistory,
    ExecResult,
    InvalidRequest,
    Phase,
    Sandbox,
    SandboxConflict,
    SandboxNotFound,
    ShareLevel,
    ShareLink,
    ShareLinkNotFound,
    ShareLinkRedeemed,
    ShareLinkRefused,
    Shares,
    Template,
    Transition,
    TransitionSink,
)
from .local import LocalControlPlane
from .templates import DEFAULT_TEMPLATES, load_templates

__all__ = [
    "DEFAULT_TEMPLATES",
    "ControlPlane",
    "ControlPlaneError",
    "ControlPlaneUnavailable",
    "EventHistory",
    "ExecResult",
    "InvalidRequest",
    "LocalControlPlane",
    "Phase",
    "Sandbox",
    "SandboxConflict",
    "SandboxNotFound",
    "ShareLevel",
    "ShareLink",
    "ShareLinkNotFound",
    "ShareLinkRedeemed",
    "ShareLinkRefused",
    "Shares",
    "Template",
    "Transition",
    "TransitionSink",
    "load_templates",
]
