"""The recorder package's shape: its modules import each other without a cycle, and the
recorder asks its writer (``offer``) rather than setting the writer's fields."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from prometheus_client import CollectorRegistry

import agenttier_router.storage as storage
from agenttier_router.storage import AuditEvent, Recorder, RecorderConfig, open_backend

PACKAGE = Path(importlib.import_module("agenttier_router.storage.recorder").__file__ or "").parent


def _imports(path: Path) -> set[str]:
    """The sibling modules ``path`` imports (``from .x import …``), by name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_the_recorder_modules_import_each_other_without_a_cycle() -> None:
    graph = {p.stem: _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert {"config", "core", "writer", "spool", "metrics"} <= set(graph)
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for child in graph.get(name, set()):
            visit(child, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())
    assert "core" not in graph["writer"]  # the writer never reaches back into the recorder


def test_the_recorder_sets_no_field_of_another_object() -> None:
    # One object owns each piece of mutable state: the recorder calls the writer's methods.
    tree = ast.parse((PACKAGE / "core.py").read_text())
    foreign = [
        ast.unparse(target)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute)
        and not (isinstance(target.value, ast.Name) and target.value.id == "self")
    ]
    assert foreign == []


def test_public_names_keep_their_import_path() -> None:
    from agenttier_router.storage.recorder import Recorder as FromPackage

    assert storage.Recorder is FromPackage
    for name in ("Recorder", "RecorderConfig", "RecorderStatus", "drain_on_sigterm"):
        assert getattr(storage, name).__module__.startswith("agenttier_router.storage.recorder.")


def test_a_full_queue_refuses_the_offer_and_counts_the_drop(tmp_path: Path) -> None:
    backend = open_backend(f"sqlite:///{tmp_path / 'store.db'}")
    backend.close()  # every write fails, so nothing leaves the queue after the first batch
    registry = CollectorRegistry()
    recorder = Recorder(backend, config=RecorderConfig(queue_size=3, batch_size=1000,
                                                       flush_interval=3600),
                        registry=registry)
    try:
        for i in range(5):
            recorder.record(AuditEvent(actor="alice", action="exec", sandbox_id=f"sb-{i}"))
        assert recorder.status().queued == 3
        value = registry.get_sample_value("agenttier_recorder_records_dropped_total",
                                          {"type": "audit_event", "reason": "queue_full"})
        assert value == 2
    finally:
        recorder.close(timeout=0.1)
