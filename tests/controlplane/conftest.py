"""Fixtures for the control-plane tests: a real LocalControlPlane on a real temp directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cp_helpers import Transitions

from agenttier_router.controlplane import DEFAULT_TEMPLATES, LocalControlPlane


@pytest.fixture
def transitions() -> Transitions:
    return Transitions()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "sandboxes"


@pytest.fixture
def plane(root: Path, transitions: Transitions) -> Iterator[LocalControlPlane]:
    control_plane = LocalControlPlane(root, DEFAULT_TEMPLATES, transitions)
    yield control_plane
    control_plane.close()
