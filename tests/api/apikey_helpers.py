"""Helpers for the minted API key tests: the SDK's ``client.api_keys`` calls, on the wire.

The published ``agenttier`` 0.8.1 installed here has no ``api_keys`` attribute
(the upstream head has it, in ``apikeys.py``). :class:`ApiKeys` sends exactly
what that module sends (``POST /user/api-keys`` with ``name``, ``expiresIn``,
``sandboxId`` and ``actionGroups``, each only when given; ``GET``; ``DELETE
/user/api-keys/{id}``) and checks the answers against the fields its
``APIKeyCreated`` and ``APIKeyMetadata`` models read, times included. Using a
minted key goes through the installed SDK (``Router.client(key)``).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

import httpx

__all__ = ["CREATED_FIELDS", "METADATA_FIELDS", "ApiKeys", "check_created", "check_metadata"]

CREATED_FIELDS = {"id", "key", "name", "sandboxId", "actionGroups", "createdAt", "expiresAt",
                  "warning"}
"""What ``POST /user/api-keys`` answers (201)."""
METADATA_FIELDS = {"id", "userId", "name", "sandboxId", "actionGroups", "createdAt",
                   "expiresAt", "lastUsedAt"}
"""What a listed key may hold; the optional ones are left out when empty."""

_KEY = re.compile(r"atk_[A-Za-z0-9_-]{43}")


def _moment(text: Any) -> datetime:
    """Parse a time as the SDK's pydantic ``datetime`` fields would (ISO 8601 with a zone)."""
    assert isinstance(text, str), text
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, text
    return moment


def check_created(body: dict[str, Any]) -> dict[str, Any]:
    """Assert the shape of a freshly minted key's answer; return it."""
    assert set(body) == CREATED_FIELDS, body
    assert _KEY.fullmatch(body["key"]), body["key"]
    digest = hashlib.sha256(body["key"].encode()).hexdigest()
    assert body["id"] == "agenttier-apikey-" + digest[:40]
    assert isinstance(body["actionGroups"], list)  # never null
    _moment(body["createdAt"])
    if body["expiresAt"] is not None:
        _moment(body["expiresAt"])
    assert "once" in body["warning"]
    return body


def check_metadata(item: dict[str, Any]) -> dict[str, Any]:
    """Assert the shape of a listed key: no key, no hash, empty optional fields left out."""
    assert set(item) <= METADATA_FIELDS and {"id", "userId", "name", "createdAt"} <= set(item)
    for optional in ("sandboxId", "actionGroups", "expiresAt", "lastUsedAt"):
        assert item.get(optional, "x"), f"{optional} is present but empty: {item}"
    _moment(item["createdAt"])
    return item


class ApiKeys:
    """``client.api_keys`` as the SDK's upstream head calls it, over plain HTTP."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def create_raw(self, name: str | None = None, expires_in: str | None = None, *,
                   sandbox_id: str | None = None,
                   action_groups: list[str] | None = None) -> httpx.Response:
        """POST the body the SDK sends; the raw answer."""
        body: dict[str, object] = {}
        if name is not None:
            body["name"] = name
        if expires_in is not None:
            body["expiresIn"] = expires_in
        if sandbox_id is not None:
            body["sandboxId"] = sandbox_id
        if action_groups is not None:
            body["actionGroups"] = action_groups
        return self._http.post("/user/api-keys", json=body)

    def create(self, name: str | None = None, expires_in: str | None = None, *,
               sandbox_id: str | None = None,
               action_groups: list[str] | None = None) -> dict[str, Any]:
        """Mint a key (201 expected); the checked answer."""
        response = self.create_raw(name, expires_in, sandbox_id=sandbox_id,
                                   action_groups=action_groups)
        assert response.status_code == 201, response.text
        return check_created(response.json())

    def list(self) -> list[dict[str, Any]]:
        """The caller's keys, each checked."""
        response = self._http.get("/user/api-keys")
        assert response.status_code == 200, response.text
        return [check_metadata(k) for k in response.json()["keys"]]

    def revoke(self, key_id: str) -> httpx.Response:
        """DELETE one key; the raw answer."""
        return self._http.delete(f"/user/api-keys/{key_id}")
