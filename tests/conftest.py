"""Fixtures shared by every test: a fresh database on each real backend in turn.

The helpers behind them are in ``tests/realdb.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from realdb import KINDS, IsolatedDatabase

from agenttier_router.storage import Backend, SQLBackend, open_backend


@pytest.fixture(params=[pytest.param(kind, id=kind) for kind in KINDS])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IsolatedDatabase]:
    """A fresh database on each backend in turn."""
    db = IsolatedDatabase(request.param, tmp_path)
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def store_url(database: IsolatedDatabase) -> str:
    """The URL of a fresh database on each backend in turn."""
    return database.url


@pytest.fixture
def backend(store_url: str) -> Iterator[SQLBackend]:
    """An open backend on a fresh database, closed (engine disposed) afterwards."""
    opened: Backend = open_backend(store_url)
    assert isinstance(opened, SQLBackend)
    try:
        yield opened
    finally:
        opened.close()
