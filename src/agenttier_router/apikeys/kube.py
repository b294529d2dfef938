"""Minted keys on Kubernetes: one Secret per key in the Router's namespace, watched.

::

    store = SecretKeyStore(api_client, "agenttier")

Each key is a Secret named after its id (``agenttier-apikey-<40 hex>``), of
type ``agenttier.io/api-key`` and labelled ``agenttier.io/component=api-key``;
its data is ``hash`` (the key's hex SHA-256) and ``metadata`` (JSON: owner,
name, times, scope), never the key. Every Router replica lists and watches
those Secrets (:class:`~agenttier_router.controlplane.kubernetes.informer.Informer`)
and answers from memory, so checking a key never calls the API server.

**How soon a change is seen.** On the replica that made it, at once: a new key
is served as soon as its Secret is created, and a revoked one is refused as
soon as its Secret is deleted (and never revived by a late watch event). On
the other replicas, when their watch delivers the change: normally well under
a second. A replica whose watch fails refuses every minted key once it has
failed for ``stale_after`` seconds (15), until it has listed again; a watch
that goes silent without failing is re-made every ``watch_timeout`` seconds (30)
and given up after 30 s more without a byte. So a revoked key stops everywhere
within at most ``watch_timeout + 30 + stale_after`` = 75 s even through a
silent network partition, and within the watch's latency otherwise
(``bench/apikeys_propagation.py``: before the first Router has answered). A
Router just started accepts minted keys once it has listed the Secrets.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

from agenttier_router.controlplane.kubernetes._api import RateLimitedWarning, error_from
from agenttier_router.controlplane.kubernetes.informer import Informer

from .base import (
    KEY_PREFIX,
    KeyStoreUnavailable,
    MintedKey,
    find_by_id,
    find_presented,
    oldest_first,
)

__all__ = ["LABEL", "LABEL_SELECTOR", "SECRET_TYPE", "SecretKeyStore", "key_from", "secret_for"]

LABEL = "agenttier.io/component"
"""The label every key's Secret carries, with the value ``api-key``."""
LABEL_SELECTOR = f"{LABEL}=api-key"
"""How the Secrets of keys are listed and watched."""
SECRET_TYPE = "agenttier.io/api-key"
"""The Secrets' ``type``."""

_log = logging.getLogger(__name__)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def secret_for(key: MintedKey, namespace: str) -> dict[str, Any]:
    """The Secret that stores ``key``: its hash and metadata, never the key."""
    record = key.to_record()
    digest = record.pop("hash")
    return {
        "apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
        "metadata": {"name": key.id, "namespace": namespace,
                     "labels": {LABEL: "api-key",
                                "app.kubernetes.io/managed-by": "agenttier-router"}},
        "data": {"hash": _b64(digest), "metadata": _b64(json.dumps(record, sort_keys=True))},
    }


def key_from(secret: Mapping[str, Any]) -> MintedKey:
    """Read a key back from its Secret; ``ValueError`` (or ``KeyError``) if it is malformed."""
    data = secret.get("data") or {}
    record = json.loads(base64.b64decode(data["metadata"]))
    record["hash"] = base64.b64decode(data["hash"]).decode("ascii")
    key = MintedKey.from_record(record)
    if key.id != (secret.get("metadata") or {}).get("name"):
        raise ValueError(f"Secret {key.id!r} is named differently from its key")
    return key


class SecretKeyStore:
    """Minted keys as Secrets in ``namespace``, served from a watch (see the module doc)."""

    def __init__(self, api_client: ApiClient, namespace: str, *, watch_timeout: float = 30.0,
                 stale_after: float = 15.0, backoff: tuple[float, float] = (0.1, 5.0)) -> None:
        self._core = CoreV1Api(api_client)
        self._namespace = namespace
        self._stale_after = stale_after
        self._lock = threading.Lock()
        self._keys: dict[str, MintedKey] = {}
        self._revoked: set[str] = set()  # removed here; a late watch event must not revive it
        self._warn = RateLimitedWarning(_log)
        self._informer = Informer(
            "secrets",
            functools.partial(self._core.list_namespaced_secret, namespace),
            self._on_secret, label_selector=LABEL_SELECTOR, watch_timeout=watch_timeout,
            backoff=backoff)
        self._informer.start()

    def __repr__(self) -> str:
        return f"SecretKeyStore(namespace={self._namespace!r}, keys={len(self._keys)})"

    @property
    def namespace(self) -> str:
        """Where the Secrets are."""
        return self._namespace

    def wait_synced(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the first list of the Secrets."""
        return self._informer.wait_synced(timeout)

    def _on_secret(self, kind: str, old: Mapping[str, Any] | None,
                   new: Mapping[str, Any] | None) -> None:
        name = str(((new or old or {}).get("metadata") or {}).get("name") or "")
        with self._lock:
            if new is None:
                self._keys.pop(name, None)
                self._revoked.discard(name)
                return
            if name in self._revoked:
                return
            try:
                self._keys[name] = key_from(new)
            except (ValueError, KeyError, TypeError) as error:
                self._keys.pop(name, None)
                self._warn(f"bad:{name}", "api keys: ignoring Secret %s/%s: %s",
                           self._namespace, name, error)

    def _fresh(self) -> bool:
        """Whether the watch can be trusted: listed, and not failing for ``stale_after`` s."""
        if not self._informer.synced:
            return False
        since = self._informer.problem_since
        if since is not None and time.monotonic() - since > self._stale_after:
            self._warn("stale", "api keys: the watch of Secrets has failed for over %.0f s "
                       "(%s); minted keys are refused until it works again",
                       self._stale_after, self._informer.problem)
            return False
        return True

    def identify(self, presented: str) -> MintedKey | None:
        """The unexpired key ``presented`` is, or None (also while the watch is stale)."""
        if not presented.startswith(KEY_PREFIX) or not self._fresh():
            return None
        return find_presented(self._keys, presented)

    def get(self, key_id: str) -> MintedKey | None:
        """One key by id, or None."""
        return find_by_id(self._keys, key_id)

    def all_keys(self) -> list[MintedKey]:
        """Every key, oldest first."""
        with self._lock:
            found = list(self._keys.values())
        return oldest_first(found)

    def add(self, key: MintedKey) -> None:
        """Create the key's Secret; the key works here at once."""
        try:
            body: Any = secret_for(key, self._namespace)  # the client sends a dict as JSON
            self._core.create_namespaced_secret(self._namespace, body)
        except Exception as error:
            raise self._unavailable(error, "create", key.id) from None
        with self._lock:
            if key.id not in self._revoked:
                self._keys[key.id] = key

    def remove(self, key_id: str) -> bool:
        """Delete the key's Secret; it is refused here at once. False if it was not there."""
        with self._lock:
            known = key_id in self._keys
        try:
            self._core.delete_namespaced_secret(key_id, self._namespace)
            deleted = True
        except ApiException as error:
            if error.status != 404:
                raise self._unavailable(error, "delete", key_id) from None
            deleted = False
        except Exception as error:
            raise self._unavailable(error, "delete", key_id) from None
        with self._lock:
            if deleted:  # its DELETED event clears this
                self._revoked.add(key_id)
            self._keys.pop(key_id, None)
        return deleted or known

    def _unavailable(self, error: Exception, verb: str, name: str) -> KeyStoreUnavailable:
        translated = error_from(error, verb, "secrets", namespace=self._namespace, name=name)
        return KeyStoreUnavailable(str(translated))

    def close(self) -> None:
        """Stop the watch."""
        self._informer.close()
