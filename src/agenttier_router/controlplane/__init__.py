"""Control planes: where sandboxes live and go through their lifecycle.

:mod:`.base` is the contract the HTTP API drives; :mod:`.local` runs sandboxes
in the Router's own process (no isolation: evaluation only).
"""

from __future__ import annotations

from .base import (
    ControlPlane,
    ControlPlaneError,
    ExecResult,
    InvalidRequest,
    Phase,
    Sandbox,
    SandboxConflict,
    SandboxNotFound,
    ShareLevel,
    Shares,
    Template,
    Transition,
    TransitionSink,
)

__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "ExecResult",
    "InvalidRequest",
    "Phase",
    "Sandbox",
    "SandboxConflict",
    "SandboxNotFound",
    "ShareLevel",
    "Shares",
    "Template",
    "Transition",
    "TransitionSink",
]
