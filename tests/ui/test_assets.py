"""The pages' assets ship in the package and load nothing from another host."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import agenttier_router.ui

ROOT = Path(__file__).resolve().parents[2]
UI = Path(agenttier_router.ui.__file__).parent


def test_every_template_and_static_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["agenttier_router"]
    package = UI.parent
    files = [p for d in ("templates", "static") for p in (UI / d).rglob("*") if p.is_file()]
    assert files
    for path in files:
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch(relative, g) for g in globs), f"{relative} is not package data"


def test_no_asset_refers_to_another_host_or_runs_inline_script() -> None:
    for path in [*(UI / "templates").iterdir(), *(UI / "static").iterdir()]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), path.name
        if path.suffix == ".html":
            # Scripts only by src (CSP script-src 'self'), no handler attributes, no style=.
            assert re.findall(r"<script(?![^>]*\bsrc=)", text) == [], path.name
            assert not re.search(r"\son[a-z]+=", text), path.name
            assert " style=" not in text, path.name
