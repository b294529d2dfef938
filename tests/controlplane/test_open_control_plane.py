"""Choosing a control plane by URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from cp_helpers import Transitions

from agenttier_router.controlplane import DEFAULT_TEMPLATES, InvalidRequest, LocalControlPlane
from agenttier_router.controlplane.open import local_root, open_control_plane


@pytest.mark.parametrize(("url", "expected"), [
    pytest.param("local:///var/lib/agenttier", Path("/var/lib/agenttier"), id="absolute"),
    pytest.param("local://agenttier-data", Path("agenttier-data"), id="relative"),
    pytest.param("local://data/dir", Path("data/dir"), id="relative-nested"),
])
def test_local_urls_name_a_directory(url: str, expected: Path) -> None:
    assert local_root(url) == expected


def test_open_local_creates_the_plane_in_that_directory(tmp_path: Path) -> None:
    plane = open_control_plane(f"local://{tmp_path / 'data'}", Transitions(),
                               templates=DEFAULT_TEMPLATES)
    try:
        assert isinstance(plane, LocalControlPlane)
        assert (tmp_path / "data").is_dir()
    finally:
        plane.close()


@pytest.mark.parametrize("url", [
    pytest.param("local://", id="no-directory"),
    pytest.param("local:///x?y=1", id="query"),
    pytest.param("docker://", id="unknown-scheme"),
    pytest.param("/just/a/path", id="no-scheme"),
])
def test_bad_urls_name_the_accepted_forms(url: str) -> None:
    with pytest.raises(InvalidRequest, match=r"local:///path/to/data-dir or kubernetes://"):
        open_control_plane(url, Transitions(), templates=DEFAULT_TEMPLATES)
