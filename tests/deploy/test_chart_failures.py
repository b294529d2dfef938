"""Every unsafe combination of values fails ``helm template`` with a message saying what to do."""

from __future__ import annotations

import pytest
from helm_helpers import render_error

SECRET_DSN = "postgresql://router:hunter2@db.example:5432/agenttier"

FAILURES = [
    pytest.param(
        {"optional.storage.enabled": True, "router.replicas": 2},
        ["router.replicas is 2", "single-writer", "ReadWriteOnce", "router.replicas=1",
         "external Postgres", "optional.storage.driver=postgres"],
        id="sqlite-with-two-replicas",
    ),
    pytest.param(
        {"optional.storage.enabled": True, "router.replicas": 2,
         "optional.storage.sqlite.persistence.enabled": False},
        ["router.replicas is 2", "Postgres"],
        id="ephemeral-sqlite-with-two-replicas",
    ),
    pytest.param(
        {"optional.storage.enabled": True, "optional.storage.driver": "postgres",
         "optional.storage.dsn": SECRET_DSN},
        ["optional.storage.dsn is set inline", "optional.storage.dsnSecret.name",
         "remove optional.storage.dsn"],
        id="inline-dsn",
    ),
    pytest.param(
        {"optional.storage.enabled": True, "optional.storage.driver": "postgres",
         "optional.storage.dsn": SECRET_DSN, "optional.storage.dsnSecret.name": "router-db"},
        ["optional.storage.dsn is set inline", "optional.storage.dsnSecret.name"],
        id="inline-dsn-beside-dsn-secret",
    ),
    pytest.param(
        {"optional.storage.dsn": SECRET_DSN},
        ["optional.storage.dsn is set inline", "optional.storage.dsnSecret.name"],
        id="inline-dsn-with-storage-off",
    ),
    pytest.param(
        {"optional.storage.enabled": True, "optional.storage.driver": "postgres"},
        ["optional.storage.driver=postgres needs optional.storage.dsnSecret.name",
         "kubectl create secret generic"],
        id="postgres-without-dsn-secret",
    ),
    pytest.param(
        {"optional.storage.enabled": True, "optional.storage.driver": "mysql",
         "optional.storage.dsnSecret.key": "uri"},
        ["optional.storage.driver=mysql needs optional.storage.dsnSecret.name", '"uri"'],
        id="mysql-without-dsn-secret-name",
    ),
    pytest.param(
        {"optional.storage.enabled": True, "optional.storage.driver": "oracle"},
        ['optional.storage.driver must be one of sqlite, postgres or mysql, not "oracle"'],
        id="unknown-driver",
    ),
    pytest.param(
        {"optional.storage.enabled": True, "optional.storage.sqlite.path": "agenttier.db"},
        ["optional.storage.sqlite.path must be a clean absolute file path"],
        id="relative-sqlite-path",
    ),
    pytest.param(
        {"optional.storage.enabled": True, "optional.storage.sqlite.path": "/agenttier.db"},
        ['would mount the storage volume at "/"'],
        id="sqlite-file-in-the-root-directory",
    ),
    pytest.param(
        {"optional.storage.enabled": True, "optional.storage.sqlite.path": "/tmp/agenttier.db"},
        ['would mount the storage volume at "/tmp"', "a directory of its own"],
        id="sqlite-file-in-tmp",
    ),
    pytest.param(
        {"optional.storage.sqlite.persistance.enabled": False},
        ["optional.storage.sqlite", "persistance"],
        id="misspelt-storage-key",
    ),
    pytest.param(
        {"router.controlPlane": "docker"},
        ['router.controlPlane must be kubernetes', 'or local', 'not "docker"'],
        id="unknown-control-plane",
    ),
    pytest.param(
        {"router.mode": "record"},
        ['router.mode must be serve', 'or watch', 'not "record"'],
        id="unknown-mode",
    ),
    pytest.param(
        {"router.mode": "watch"},
        ["router.mode=watch records history, so it needs storage",
         "optional.storage.enabled=true", "optional.storage.driver=postgres"],
        id="watch-without-storage",
    ),
    pytest.param(
        {"router.mode": "watch", "router.controlPlane": "local",
         "optional.storage.enabled": True},
        ["router.mode=watch", "needs router.controlPlane=kubernetes"],
        id="watch-with-the-local-plane",
    ),
    pytest.param(
        {"router.mode": "watch", "optional.storage.enabled": True, "router.replicas": 2},
        ["router.replicas is 2", "single-writer"],
        id="watch-on-sqlite-with-two-replicas",
    ),
    pytest.param(
        {"router.controlPlane": "local", "router.replicas": 2},
        ["router.replicas is 2", "router.controlPlane=local", "one Router pod",
         "router.replicas=1", "router.controlPlane=kubernetes"],
        id="local-with-two-replicas",
    ),
    pytest.param(
        {"router.controlPlane": "local", "router.replicas": 3,
         "optional.storage.enabled": True, "optional.storage.driver": "postgres",
         "optional.storage.dsnSecret.name": "router-db"},
        ["router.replicas is 3", "router.controlPlane=local"],
        id="local-on-postgres-with-three-replicas",
    ),
    pytest.param(
        {"router.controlPlane": "local", "router.namespace": "team-a"},
        ["router.namespace=team-a", "router.controlPlane=local", "Unset router.namespace"],
        id="namespace-with-the-local-plane",
    ),
    pytest.param(
        {"router.namespace": "Team_A"},
        ["router.namespace must be a namespace name", '"Team_A"'],
        id="invalid-namespace",
    ),
    pytest.param(
        {"router.templates[0].name": "big", "router.templates[0].cpu": 2},
        ["router.templates are the local control plane's", "ClusterSandboxTemplates",
         "unset router.templates"],
        id="local-templates-with-the-kubernetes-plane",
    ),
    pytest.param(
        {"serviceAccount.create": False},
        ["rbac.create=true with serviceAccount.create=false", '"default" ServiceAccount',
         "serviceAccount.name"],
        id="rbac-for-the-default-account",
    ),
    pytest.param(
        {"rbac.craete": False},
        ["rbac", "craete"],
        id="misspelt-rbac-key",
    ),
    pytest.param(
        {"router.costs.interval": 0.5},
        ["router.costs.interval is 0.5 seconds", "at least 1 second"],
        id="cost-interval-below-a-second",
    ),
    pytest.param(
        {"router.costs.cpuPrice": "cheap"},
        ["router.costs.cpuPrice", "Does not match pattern"],
        id="cpu-price-not-a-number",
    ),
    pytest.param(
        {"router.costs.memoryPrice": -1},
        ["router.costs.memoryPrice", "greater than or equal to 0"],
        id="negative-memory-price",
    ),
    pytest.param(
        {"crds.enabled": True},
        ["crds", "enabled"],
        id="misspelt-crds-key",
    ),
]


@pytest.mark.parametrize(("values", "fragments"), FAILURES)
def test_unsafe_values_fail_the_render(values: dict[str, object], fragments: list[str]) -> None:
    message = render_error(values)
    for fragment in fragments:
        assert fragment in message, message
    assert "hunter2" not in message  # a DSN's password is never echoed back
