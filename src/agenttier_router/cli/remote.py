"""Reading history through a Router's HTTP API, for people without database credentials.

:class:`RemoteStore` answers the read side of the storage ``Backend`` protocol
(``list_*`` and ``summarize_costs``) from ``/api/v1/audit/events`` and
``/api/v1/records/*``, so ``agenttier-router records … --url URL`` prints
exactly what ``--dsn`` would. It cannot write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx

from agenttier_router.storage import (
    AuditEvent,
    AuditFilter,
    BackendUnavailable,
    CostFilter,
    CostSnapshot,
    CostTotal,
    GroupBy,
    InvalidQuery,
    Page,
    Record,
    SandboxEvent,
    SandboxEventFilter,
    StorageError,
    format_ts,
    parse_ts,
)

__all__ = ["RemoteStore"]

_TIMEOUT = 30.0


class RemoteStore:
    """The history a Router serves at ``url``, read with ``api_key`` (an admin's)."""

    def __init__(self, url: str, api_key: str | None) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self._url = url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self._url}/api/v1", headers=headers,
                                  timeout=_TIMEOUT)

    def __repr__(self) -> str:
        return f"RemoteStore({self._url!r})"

    def _get(self, path: str, query: AuditFilter | SandboxEventFilter | CostFilter,
             **params: Any) -> Any:
        if query.since is not None:
            params["since"] = format_ts(query.since)
        if query.until is not None:
            params["until"] = format_ts(query.until)
        params = {k: v for k, v in params.items() if v is not None}
        try:
            response = self._http.get(path, params=params)
        except httpx.HTTPError as error:
            raise BackendUnavailable(f"cannot reach the Router at {self._url}: {error}") from None
        if response.is_success:
            return response.json()
        try:
            message = response.json().get("error") or response.reason_phrase
        except ValueError:
            message = response.reason_phrase
        if response.status_code in (400, 422):
            raise InvalidQuery(f"the Router refused the query: {message}")
        if response.status_code >= 500:
            raise BackendUnavailable(f"the Router answered {response.status_code}: {message}")
        raise StorageError(f"the Router answered {response.status_code}: {message}")

    def list_audit_events(self, query: AuditFilter) -> Page[AuditEvent]:
        """One page of ``GET /audit/events``."""
        data = self._get("/audit/events", query, actor=query.actor, sandbox=query.sandbox_id,
                         action=query.action, resource=query.resource,
                         namespace=query.namespace, outcome=query.outcome, limit=query.limit,
                         cursor=query.cursor)
        return Page(tuple(_audit(e) for e in data["events"]), data.get("nextCursor"))

    def list_sandbox_events(self, query: SandboxEventFilter) -> Page[SandboxEvent]:
        """One page of ``GET /records/sandbox-events``."""
        data = self._get("/records/sandbox-events", query, sandbox=query.sandbox_id,
                         namespace=query.namespace, phase=query.phase, limit=query.limit,
                         cursor=query.cursor)
        events = tuple(
            SandboxEvent(sandbox_id=e["sandboxId"], sandbox_name=e["sandboxName"],
                         namespace=e["namespace"], phase=e["phase"], reason=e["reason"],
                         message=e["message"], time=parse_ts(e["timestamp"]),
                         event_id=e["eventId"])
            for e in data["events"]
        )
        return Page(events, data.get("nextCursor"))

    def list_cost_snapshots(self, query: CostFilter) -> Page[CostSnapshot]:
        """One page of ``GET /records/costs``."""
        data = self._get("/records/costs", query, sandbox=query.sandbox_id,
                         namespace=query.namespace, owner=query.owner, template=query.template,
                         limit=query.limit, cursor=query.cursor)
        snapshots = tuple(
            CostSnapshot(sandbox_id=s["sandboxId"], namespace=s["namespace"],
                         owner=s.get("owner") or "", template=s.get("template") or "",
                         cpu_hours=s["cpuHours"], mem_gb_hours=s["memGbHours"],
                         estimated_usd=s["estimatedUsd"], time=parse_ts(s["timestamp"]),
                         event_id=s["eventId"])
            for s in data["snapshots"]
        )
        return Page(snapshots, data.get("nextCursor"))

    def summarize_costs(self, query: CostFilter, group_by: GroupBy = "sandbox") -> list[CostTotal]:
        """``GET /records/costs?groupBy=…``: totals over the filter's window."""
        data = self._get("/records/costs", query, sandbox=query.sandbox_id,
                         namespace=query.namespace, owner=query.owner, template=query.template,
                         groupBy=group_by)
        return [CostTotal(t["key"], t["cpuHours"], t["memGbHours"], t["estimatedUsd"],
                          t["samples"]) for t in data["totals"]]

    def record_audit_event(self, event: AuditEvent) -> None:
        """Refuse: a Router's API is read here, never written."""
        raise StorageError("a Router's API is read-only here")

    def record_sandbox_event(self, event: SandboxEvent) -> None:
        """Refuse: a Router's API is read here, never written."""
        raise StorageError("a Router's API is read-only here")

    def record_cost_snapshot(self, snapshot: CostSnapshot) -> None:
        """Refuse: a Router's API is read here, never written."""
        raise StorageError("a Router's API is read-only here")

    def write_batch(self, records: Sequence[Record]) -> None:
        """Refuse: a Router's API is read here, never written."""
        raise StorageError("a Router's API is read-only here")

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()


def _audit(event: dict[str, Any]) -> AuditEvent:
    details: dict[str, Any] = event.get("details") or {}
    # The API wraps stored text that is not JSON as {"text": …}: unwrap it.
    if set(details) == {"text"}:
        text = details["text"]
    else:
        text = json.dumps(details, separators=(",", ":"), ensure_ascii=False)
    return AuditEvent(
        actor=event.get("actor") or "anonymous", action=event.get("eventType") or "unknown",
        resource=event.get("resource") or "sandbox", sandbox_id=event.get("sandboxId") or "",
        namespace=event.get("namespace") or "", outcome=event.get("outcome") or "success",
        details=text, time=parse_ts(event["timestamp"]), event_id=event.get("eventId") or "",
    )
