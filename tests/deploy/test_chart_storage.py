"""The chart's ``optional.storage`` values, scenario by scenario, as the storage spec gives them.

The spec's command is ``helm upgrade --install agenttier agenttier/agenttier
--namespace agenttier --set optional.storage.enabled=true``; it must render a
ReadWriteOnce PVC ``<release>-router-storage`` of 1Gi, mounted at the parent
directory of the database path, and ``STORAGE_SQLITE_PATH``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
import yaml
from helm_helpers import CHART, Manifest, render, render_notes, walk

from agenttier_router.storage import url_from_env

SPEC_PATH = "/var/lib/agenttier/agenttier.db"
STORAGE_ENV = {"STORAGE_DSN", "STORAGE_SQLITE_PATH", "AGENTTIER_SPOOL_DIR"}


def _writable(manifest: Manifest, path: str) -> str:
    """The kind of writable volume (emptyDir or persistentVolumeClaim) that holds ``path``."""
    mounts = sorted(manifest.container["volumeMounts"], key=lambda m: len(m["mountPath"]))
    holder = None
    for mount in mounts:  # the deepest mount that contains the path wins
        if PurePosixPath(path).is_relative_to(mount["mountPath"]):
            holder = mount
    assert holder is not None, f"{path} is on the read-only root filesystem"
    assert not holder.get("readOnly", False), f"{path} is on a read-only mount"
    volume = manifest.volumes()[holder["name"]]
    kinds = set(volume) & {"emptyDir", "persistentVolumeClaim"}
    assert len(kinds) == 1, f"{path} is on {volume}"
    return kinds.pop()


def test_values_file_has_the_specs_defaults() -> None:
    storage = yaml.safe_load((CHART / "values.yaml").read_text())["optional"]["storage"]
    assert storage["enabled"] is False
    assert storage["driver"] == "sqlite"
    assert storage["sqlite"] == {"path": SPEC_PATH, "persistence": {
        "enabled": True, "size": "1Gi", "storageClassName": ""}}
    assert "dsn" not in storage
    assert storage["dsnSecret"] == {"name": "", "key": "dsn"}


def test_disabled_renders_no_storage() -> None:
    manifest = render({"optional.storage.enabled": False})
    assert manifest.all("PersistentVolumeClaim") == []
    assert not STORAGE_ENV & set(manifest.env())
    assert set(manifest.volumes()) == {"api-keys", "tmp"}  # sandboxes are the cluster's
    assert url_from_env(manifest.env()) is None


def test_the_specs_command_renders_pvc_mount_and_path() -> None:
    manifest = render({"optional.storage.enabled": True})
    pvc = manifest.one("PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "agenttier-router-storage"
    assert pvc["spec"] == {  # no storageClassName: the cluster's default class
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    assert manifest.mounts()["/var/lib/agenttier"] == "storage"
    assert manifest.volumes()["storage"] == {
        "persistentVolumeClaim": {"claimName": "agenttier-router-storage"}}
    env = manifest.env()
    assert env["STORAGE_SQLITE_PATH"] == SPEC_PATH
    assert "STORAGE_DSN" not in env
    assert manifest.deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert manifest.deployment["spec"]["replicas"] == 1
    # The Router opens exactly that file.
    assert url_from_env(env) == f"sqlite:///{SPEC_PATH}"


def test_pvc_is_named_after_the_release() -> None:
    manifest = render({"optional.storage.enabled": True}, release="prod")
    assert manifest.one("PersistentVolumeClaim")["metadata"]["name"] == "prod-router-storage"
    assert manifest.volumes()["storage"]["persistentVolumeClaim"]["claimName"] == (
        "prod-router-storage")


def test_sqlite_path_size_and_class_come_from_values() -> None:
    manifest = render({
        "optional.storage.enabled": True,
        "optional.storage.sqlite.path": "/data/router/history.db",
        "optional.storage.sqlite.persistence.size": "20Gi",
        "optional.storage.sqlite.persistence.storageClassName": "fast-ssd",
    })
    pvc = manifest.one("PersistentVolumeClaim", "agenttier-router-storage")["spec"]
    assert pvc["resources"]["requests"]["storage"] == "20Gi"
    assert pvc["storageClassName"] == "fast-ssd"
    assert pvc["accessModes"] == ["ReadWriteOnce"]
    assert manifest.mounts()["/data/router"] == "storage"
    assert "/var/lib/agenttier" not in manifest.mounts()
    assert manifest.env()["STORAGE_SQLITE_PATH"] == "/data/router/history.db"


def test_a_dash_storage_class_disables_dynamic_provisioning() -> None:
    manifest = render({"optional.storage.enabled": True,
                       "optional.storage.sqlite.persistence.storageClassName": "-"})
    assert manifest.one("PersistentVolumeClaim")["spec"]["storageClassName"] == ""


def test_sqlite_without_persistence_is_an_empty_dir_at_the_same_place(tmp_path: Path) -> None:
    values: dict[str, object] = {"optional.storage.enabled": True,
                                 "optional.storage.sqlite.persistence.enabled": False}
    manifest = render(values)
    assert manifest.all("PersistentVolumeClaim") == []
    assert manifest.mounts()["/var/lib/agenttier"] == "storage"
    assert manifest.volumes()["storage"] == {"emptyDir": {}}
    assert manifest.env()["STORAGE_SQLITE_PATH"] == SPEC_PATH
    assert manifest.deployment["spec"]["strategy"] == {"type": "Recreate"}
    notes = render_notes(values, tmp_path)
    assert "WARNING: optional.storage.sqlite.persistence.enabled=false" in notes
    assert "LOST when the pod restarts" in notes


def test_notes_name_the_pvc_when_persistent(tmp_path: Path) -> None:
    notes = render_notes({"optional.storage.enabled": True}, tmp_path)
    assert "PersistentVolumeClaim agenttier-router-storage (1Gi, ReadWriteOnce)" in notes
    assert "WARNING" not in notes


def test_notes_say_storage_is_off_by_default(tmp_path: Path) -> None:
    notes = render_notes({}, tmp_path)
    assert "Storage: off." in notes
    assert "kubectl --namespace agenttier create secret generic agenttier-api-keys" in notes


@pytest.mark.parametrize("persistence", [
    pytest.param(True, id="pvc"), pytest.param(False, id="empty-dir"),
])
def test_sqlite_spool_is_on_the_storage_volume(persistence: bool) -> None:
    manifest = render({"optional.storage.enabled": True,
                       "optional.storage.sqlite.persistence.enabled": persistence})
    spool = manifest.env()["AGENTTIER_SPOOL_DIR"]
    assert spool == "/var/lib/agenttier/spool"
    assert _writable(manifest, spool) == ("persistentVolumeClaim" if persistence else "emptyDir")


@pytest.mark.parametrize("driver", ["postgres", "mysql"])
def test_external_database_takes_its_dsn_from_a_secret(driver: str) -> None:
    manifest = render({"optional.storage.enabled": True, "optional.storage.driver": driver,
                       "optional.storage.dsnSecret.name": "router-db",
                       "optional.storage.dsnSecret.key": "uri"})
    env = manifest.env()
    assert env["STORAGE_DSN"] == {"secretKeyRef": {"name": "router-db", "key": "uri"}}
    assert "STORAGE_SQLITE_PATH" not in env
    assert manifest.all("PersistentVolumeClaim") == []
    assert "storage" not in manifest.volumes()
    spool = env["AGENTTIER_SPOOL_DIR"]
    assert _writable(manifest, spool) == "emptyDir"
    assert manifest.mounts()[spool] == "spool"
    assert manifest.deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    # Nothing that looks like a URL is rendered anywhere, but the control plane's.
    plane = env["AGENTTIER_CONTROL_PLANE"]
    assert plane == "kubernetes://"
    assert not [v for v in walk(list(manifest.objects))
                if isinstance(v, str) and "://" in v and v != plane]


def test_external_database_dsn_key_defaults_to_dsn() -> None:
    manifest = render({"optional.storage.enabled": True, "optional.storage.driver": "postgres",
                       "optional.storage.dsnSecret.name": "router-db"})
    assert manifest.env()["STORAGE_DSN"] == {"secretKeyRef": {"name": "router-db", "key": "dsn"}}


@pytest.mark.parametrize("driver", ["postgres", "mysql"])
def test_an_external_database_allows_more_than_one_replica(driver: str, tmp_path: Path) -> None:
    values: dict[str, object] = {
        "optional.storage.enabled": True, "optional.storage.driver": driver,
        "optional.storage.dsnSecret.name": "router-db", "router.replicas": 3}
    manifest = render(values)  # the kubernetes control plane, by default
    assert manifest.deployment["spec"]["replicas"] == 3
    assert manifest.deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    notes = render_notes(values, tmp_path)
    assert "Replicas: 3, sharing the cluster's Sandboxes" in notes
    assert "each record is stored once in the shared database" in notes
    assert "WARNING" not in notes


def test_storage_settings_are_ignored_while_storage_is_off() -> None:
    # A driver or a replica count that would fail with storage on is fine while it is off.
    manifest = render({"optional.storage.driver": "postgres", "router.replicas": 2})
    assert manifest.all("PersistentVolumeClaim") == []
    assert not STORAGE_ENV & set(manifest.env())
