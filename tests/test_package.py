"""The package's shape: its public names, an ``__all__`` in every module, a docstring on each
public definition, and clean lint and types."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import agenttier_router
import agenttier_router.storage

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> list[str]:
    names = ["agenttier_router"]
    for info in pkgutil.walk_packages(agenttier_router.__path__, "agenttier_router."):
        if ".migrations" in info.name:  # Alembic loads these files itself
            continue
        names.append(info.name)
    return names


def test_storage_public_api() -> None:
    # Like httpx's test_exported_members: changing this list is a deliberate act.
    assert set(agenttier_router.storage.__all__) >= {
        "AuditEvent", "AuditFilter", "Backend", "BackendUnavailable", "CostFilter",
        "CostSnapshot", "CostTotal", "DriverNotInstalled", "InvalidQuery", "InvalidURL",
        "NoopBackend", "Page", "SQLBackend", "SandboxEvent", "SandboxEventFilter", "SchemaError",
        "SchemaStatus", "StorageError", "backend_from_env", "mask_secrets", "mask_url",
        "open_backend",
        "url_from_env",
    }
    for name in agenttier_router.storage.__all__:
        assert hasattr(agenttier_router.storage, name), name


@pytest.mark.parametrize("name", _modules())
def test_every_module_declares_all_and_documents_it(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no docstring"
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    for public in module.__all__:
        value = getattr(module, public)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name}.{public} has no docstring"
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if not attr.startswith("_") and inspect.isfunction(member):
                    assert inspect.getdoc(member), f"{name}.{public}.{attr} has no docstring"


def test_every_storage_error_is_a_storage_error() -> None:
    from agenttier_router.storage import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.StorageError)


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return path


def test_ruff_is_clean() -> None:
    result = subprocess.run([_tool("ruff"), "check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
