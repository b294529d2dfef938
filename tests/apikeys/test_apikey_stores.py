"""The minted-key library: key records, and the file store's guarantees."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agenttier_router.apikeys import (
    FileKeyStore,
    KeyStoreUnavailable,
    MintedKey,
    mint,
    open_key_store,
)
from agenttier_router.controlplane import InvalidRequest


def test_a_minted_key_and_its_record() -> None:
    key, minted = mint(user_id="alice", email="a@x.io", name="ci",
                       expires_in=timedelta(hours=1), sandbox="sb", namespace="default",
                       action_groups=("stop",))
    assert key.startswith("atk_") and len(key) == 47
    assert minted.digest == hashlib.sha256(key.encode()).hexdigest()
    assert minted.id == "agenttier-apikey-" + minted.digest[:40]
    assert minted.matches(key) and not minted.matches(key[:-1] + "x")
    assert MintedKey.from_record(minted.to_record()) == minted
    assert key not in json.dumps(minted.to_record()) and key not in repr(minted)
    assert minted.digest not in repr(minted)
    assert not minted.expired() and minted.expired(datetime.now(UTC) + timedelta(hours=2))
    forged = {**minted.to_record(), "id": "agenttier-apikey-" + "0" * 40}
    with pytest.raises(ValueError):  # an id that is not its hash's
        MintedKey.from_record(forged)


def test_the_file_store_writes_0600_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "data" / "api-keys.json"
    store = FileKeyStore(path)
    key, minted = mint(user_id="alice", email="", name="k")
    store.add(minted)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert FileKeyStore(path).identify(key) == minted
    assert store.identify("not-a-minted-key") is None
    assert store.remove(minted.id) and not store.remove(minted.id)
    assert FileKeyStore(path).all_keys() == []


def test_a_loose_file_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.json"
    path.write_text('{"version": 1, "keys": []}')
    path.chmod(0o644)
    FileKeyStore(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_write_that_fails_keeps_the_old_state(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    store = FileKeyStore(directory / "api-keys.json")
    kept, minted = mint(user_id="alice", email="", name="kept")
    store.add(minted)
    (directory / "api-keys.json").unlink()
    directory.rmdir()
    directory.write_text("")  # the data dir is gone: no write can succeed
    key, other = mint(user_id="alice", email="", name="k")
    with pytest.raises(KeyStoreUnavailable, match="cannot write"):
        store.add(other)
    assert store.identify(key) is None
    with pytest.raises(KeyStoreUnavailable):
        store.remove(minted.id)
    assert store.identify(kept) == minted  # a revocation not on disk is not made


def test_the_store_follows_the_control_plane_url(tmp_path: Path) -> None:
    store = open_key_store(f"local://{tmp_path}")
    assert isinstance(store, FileKeyStore) and store.path == tmp_path / "api-keys.json"
    with pytest.raises(InvalidRequest):
        open_key_store("ftp://nowhere")
