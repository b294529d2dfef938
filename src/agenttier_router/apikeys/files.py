"""Minted keys on the local plane: one JSON file in the data dir, mode 0600.

::

    store = FileKeyStore(Path("agenttier-data/api-keys.json"))

The file holds ``{"version": 1, "keys": [record...]}`` (digests and metadata,
never a key). Every change rewrites it atomically: a temporary file (created
0600) in the same directory, fsynced, renamed over the old one, and the
directory fsynced, so a crash leaves the old file or the new one, never half
of either. A file that cannot be read stops the Router at start rather than be
overwritten: nothing stored is lost.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
import threading
from pathlib import Path

from .base import (
    KeyStoreUnavailable,
    MintedKey,
    find_by_id,
    find_presented,
    oldest_first,
)

__all__ = ["FILE_NAME", "FileKeyStore"]

FILE_NAME = "api-keys.json"
"""The file's name in the data dir."""

_log = logging.getLogger(__name__)


class FileKeyStore:
    """Minted keys in one 0600 JSON file, served from memory (see the module doc)."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._keys: dict[str, MintedKey] = {}
        self._load()

    def __repr__(self) -> str:
        return f"FileKeyStore({str(self._path)!r}, keys={len(self._keys)})"

    @property
    def path(self) -> Path:
        """The file."""
        return self._path

    def _load(self) -> None:
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as error:
            raise ValueError(f"cannot read the API keys store {self._path}: {error}") from None
        mode = stat.S_IMODE(self._path.stat().st_mode)
        if mode & 0o077:
            _log.warning("api keys: %s was mode %04o; made 0600", self._path, mode)
            self._path.chmod(0o600)
        try:
            document = json.loads(text)
            records = document["keys"] if isinstance(document, dict) else None
            if not isinstance(records, list):
                raise ValueError("it holds no list of keys")
            keys = [MintedKey.from_record(r) for r in records]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"the API keys store {self._path} is damaged ({error}); "
                             "move it aside to start without its keys") from None
        self._keys = {k.id: k for k in keys}

    def _save(self, keys: dict[str, MintedKey]) -> None:
        """Write ``keys`` atomically (see the module doc); raise KeyStoreUnavailable."""
        document = {"version": 1, "keys": [k.to_record() for k in keys.values()]}
        data = json.dumps(document, indent=1).encode("utf-8")
        directory = self._path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=f".{self._path.name}.", dir=directory)
            try:
                os.fchmod(fd, 0o600)  # mkstemp makes it 0600; say so anyway
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, self._path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as error:
            raise KeyStoreUnavailable(f"cannot write {self._path}: {error}") from None

    def identify(self, presented: str) -> MintedKey | None:
        """The unexpired key ``presented`` is, or None."""
        return find_presented(self._keys, presented)

    def get(self, key_id: str) -> MintedKey | None:
        """One key by id, or None."""
        return find_by_id(self._keys, key_id)

    def all_keys(self) -> list[MintedKey]:
        """Every key, oldest first."""
        return oldest_first(self._keys.values())

    def add(self, key: MintedKey) -> None:
        """Keep ``key``, on disk before it is served."""
        with self._lock:
            updated = {**self._keys, key.id: key}
            self._save(updated)
            self._keys = updated

    def remove(self, key_id: str) -> bool:
        """Forget a key, on disk before it stops being served; False if it was not there."""
        with self._lock:
            if key_id not in self._keys:
                return False
            updated = {k: v for k, v in self._keys.items() if k != key_id}
            self._save(updated)
            self._keys = updated
            return True

    def close(self) -> None:
        """Nothing runs in the background: every change is already on disk."""
