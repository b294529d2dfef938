"""Minted API keys: user keys and sandbox-scoped keys, stored hashed where the sandboxes are.

- :mod:`.base`: :class:`MintedKey`, :func:`mint`, and the :class:`MintedKeyStore` contract;
- :mod:`.files`: the local plane's store, a 0600 JSON file in the data dir;
- :mod:`.kube`: the Kubernetes plane's store, one Secret per key in the Router's
  namespace, watched by every replica (needs the ``[kubernetes]`` extra).

:func:`open_key_store` picks the store from the control-plane URL, as the control
plane itself is picked::

    store = open_key_store("local:///var/lib/agenttier")   # .../api-keys.json
    store = open_key_store("kubernetes://")                 # Secrets
"""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from agenttier_router.controlplane import InvalidRequest
from agenttier_router.controlplane.open import local_root

from .base import (
    ACTION_GROUPS,
    ID_PREFIX,
    KEY_PREFIX,
    KeyStoreUnavailable,
    MintedKey,
    MintedKeyStore,
    mint,
)
from .files import FILE_NAME, FileKeyStore

__all__ = [
    "ACTION_GROUPS",
    "ID_PREFIX",
    "KEY_PREFIX",
    "FileKeyStore",
    "KeyStoreUnavailable",
    "MintedKey",
    "MintedKeyStore",
    "mint",
    "open_key_store",
]


def open_key_store(control_plane_url: str) -> MintedKeyStore:
    """The store of minted keys that goes with the control plane at ``control_plane_url``.

    ``local://DIR`` keeps them in ``DIR/api-keys.json``; ``kubernetes://`` in
    Secrets in the Router's own namespace. Raises ``ValueError`` for a keys
    file that cannot be read, :class:`InvalidRequest` for a URL it cannot use.
    """
    scheme = urlsplit(control_plane_url).scheme
    if scheme == "local":
        return FileKeyStore(local_root(control_plane_url) / FILE_NAME)
    if scheme == "kubernetes":
        url = importlib.import_module("agenttier_router.controlplane.kubernetes.url")
        stores = importlib.import_module("agenttier_router.apikeys.kube")
        api_client, namespace = url.client_for(control_plane_url)
        store: MintedKeyStore = stores.SecretKeyStore(api_client, namespace)
        return store
    raise InvalidRequest(f"no API key store for control-plane URL {control_plane_url!r}")
