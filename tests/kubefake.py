"""A fake Kubernetes API server over real HTTP, for the Kubernetes control-plane tests.

**Why a fake:** no Kubernetes API server runs on these machines (no kind, no
k3s, no etcd), so the tests cannot use a real one. kmock 0.8's
``KubernetesEmulator`` was the starting point, but it gives no ``uid``, no
``resourceVersion`` semantics (no watch from a version, no 410 Gone, no 409 on a
stale version), no selectors and no status subresource; adding those meant
replacing most of it, so this is a small aiohttp server of our own instead.

It serves, over real HTTP on 127.0.0.1, what the Router's plane uses of the
real API, with the real API's shapes and status codes:

- custom resources of the CRDs in ``charts/agenttier/files/crds`` (Sandbox with its
  ``status`` subresource, SandboxTemplate, ClusterSandboxTemplate), and core
  ``events``, ``pods`` and ``secrets`` (the Router keeps minted API keys in
  Secrets; like every core kind here, a Secret's ``data`` is stored as sent,
  with no ``stringData`` conversion and no schema);
- ``uid``, ``resourceVersion`` (one counter for the whole store, like etcd's),
  ``creationTimestamp``, ``generateName``; 201 on create, 409 AlreadyExists;
- list and watch (all namespaces or one) with label and field selectors, watch
  from a ``resourceVersion`` (replayed from history), 410 Gone once that
  history is compacted, ``timeoutSeconds``, bookmarks;
- update (PUT) and JSON merge patch, each 409 Conflict on a stale
  ``resourceVersion``; the status subresource keeps spec and status apart;
- delete, with finalizers holding the object (``deletionTimestamp``) until
  they are removed;
- every write of an ``agenttier.io`` object validated against the CRD's
  ``openAPIV3Schema`` with jsonschema: an invalid one is refused with 422, as
  the real API server does, and kept in :attr:`FakeKubernetes.rejected`;
- bearer-token auth (401), and RBAC refusals on demand (:meth:`forbid`, 403);
- ``pods/exec`` over WebSocket speaking the channel protocol
  (``v5.channel.k8s.io`` or ``v4``): the command runs here, with ``/bin/sh``,
  standing in for the pod's container. Output is sent as it comes, as bytes
  (binary-safe); with ``stdin=true`` the client's channel 0 frames feed the
  command's stdin, and on v5 a close frame (``255, 0``) ends it (v4 has none:
  stdin ends only with the connection). The client's close kills the command.

  **A pod's filesystem.** The command runs on this machine, as this user, so
  every fake pod sees the same filesystem. The files seam roots each
  sandbox at its ``spec.storage.mountPath``, so tests that need a pod with a
  filesystem of its own create the Sandbox with ``spec.storage.mountPath`` set
  to a temporary directory: ``/workspace/x`` is then ``<that dir>/x`` on this
  machine, with no root, chroot or namespaces needed. What the fake cannot
  show is a real container's isolation: a path the Router lets out of the
  workspace reaches this machine's files, which is what the tests check for.

The tests play the controller through :meth:`FakeKubernetes.set_status`,
:meth:`post_event`, :meth:`remove_finalizers` and friends.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import secrets
import signal
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from aiohttp import WSMsgType, web

__all__ = ["CRD_DIR", "FakeKubernetes", "Resource", "now_rfc3339"]

CRD_DIR = Path(__file__).resolve().parent.parent / "charts" / "agenttier" / "files" / "crds"
TOKEN = "fake-router-token"
STATUS_CHANNEL = 3
CLOSE_CHANNEL = 255


async def _end_tasks() -> None:
    """Cancel every task still running on the loop (but this one) and wait for them to end."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def now_rfc3339(precise: bool = False) -> str:
    """Now, as Kubernetes writes times (seconds, or microseconds for ``eventTime``)."""
    now = datetime.now(UTC)
    if precise:
        return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Resource:
    """One served resource kind."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    status: bool = False
    schema: dict[str, Any] | None = None
    validator: Any = None

    def __post_init__(self) -> None:
        if self.schema is not None:  # built once: jsonschema.validate() re-checks the schema
            self.validator = jsonschema.Draft7Validator(self.schema)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def full(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _jsonschema(node: Any) -> Any:
    """openAPIV3Schema -> JSON Schema: ``nullable`` becomes a null type, the rest is kept."""
    if isinstance(node, dict):
        out = {k: _jsonschema(v) for k, v in node.items()}
        if out.pop("nullable", False) and "type" in out:
            out["type"] = [out["type"], "null"]
        if out.get("type") == "object" and "properties" in out and not node.get(
                "x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_jsonschema(v) for v in node]
    return node


def load_crds(directory: Path = CRD_DIR) -> list[Resource]:
    """The resources our CRD manifests define, each with its JSON Schema."""
    resources = []
    for path in sorted(directory.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]
        (version,) = spec["versions"]
        schema = _jsonschema(version["schema"]["openAPIV3Schema"])
        # metadata is the API server's own; the schema only says it is an object.
        schema["properties"]["metadata"] = {"type": "object"}
        resources.append(Resource(
            group=spec["group"], version=version["name"], plural=spec["names"]["plural"],
            kind=spec["names"]["kind"], namespaced=spec["scope"] == "Namespaced",
            status="status" in version.get("subresources", {}), schema=schema,
        ))
    return resources


class _Refused(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def response(self) -> web.Response:
        return web.json_response(_status(self.code, self.reason, self.message), status=self.code)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _stamp_status_write(obj: dict[str, Any], manager: str) -> None:
    """Record a write to the status subresource in managedFields, as the API server does."""
    fields = [f for f in obj["metadata"].get("managedFields") or []
              if not (f.get("manager") == manager and f.get("subresource") == "status")]
    fields.append({"manager": manager, "operation": "Update", "apiVersion": obj["apiVersion"],
                   "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": {},
                   "subresource": "status"})
    obj["metadata"]["managedFields"] = fields


def _dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _selector(text: str, where: str) -> list[tuple[str, str, str | None]]:
    """Parse an equality-based selector into (key, op, value) terms; 400 on anything else."""
    terms: list[tuple[str, str, str | None]] = []
    for raw in filter(None, (t.strip() for t in text.split(","))):
        if "!=" in raw:
            key, value = raw.split("!=", 1)
            terms.append((key.strip(), "!=", value.strip()))
        elif "==" in raw or "=" in raw:
            key, value = raw.split("==", 1) if "==" in raw else raw.split("=", 1)
            terms.append((key.strip(), "=", value.strip()))
        elif where == "label" and raw.startswith("!"):
            terms.append((raw[1:], "absent", None))
        elif where == "label" and " " not in raw and "(" not in raw:
            terms.append((raw, "present", None))
        else:
            raise _Refused(400, "BadRequest", f"unable to parse requirement: {raw!r}")
    return terms


def _matches(obj: dict[str, Any], labels: list[Any], fields: list[Any]) -> bool:
    have = (obj.get("metadata") or {}).get("labels") or {}
    for key, op, value in labels:
        if ((op == "=" and have.get(key) != value) or (op == "!=" and have.get(key) == value)
                or (op == "present" and key not in have) or (op == "absent" and key in have)):
            return False
    for key, op, value in fields:
        got = _dig(obj, key)
        got = "" if got is None else str(got)
        if (op == "=" and got != value) or (op == "!=" and got == value):
            return False
    return True


@dataclass(eq=False)
class _Watcher:
    resource: Resource
    namespace: str | None
    labels: list[Any]
    fields: list[Any]
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)


class FakeKubernetes:
    """The fake API server: start it, write :meth:`kubeconfig`, point the official client at it.

    ::

        with FakeKubernetes() as kube:
            config = kube.kubeconfig(tmp_path / "kubeconfig")
            ...
            kube.set_status("default", "sb-1", phase="Running", podName="sb-1-pod")
    """

    def __init__(self, *, port: int = 0) -> None:
        self.resources: dict[str, Resource] = {}
        for resource in [*load_crds(),
                         Resource("", "v1", "events", "Event", namespaced=True),
                         Resource("", "v1", "pods", "Pod", namespaced=True),
                         Resource("", "v1", "secrets", "Secret", namespaced=True)]:
            self.resources[resource.plural] = resource
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.rv = 0
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []
        self.compacted = 0  # a watch from a version below this one gets 410 Gone
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, query)
        self.writes: list[tuple[str, str, dict[str, Any]]] = []  # (verb, plural, object)
        self.rejected: list[tuple[str, str]] = []  # (plural, why) of refused invalid writes
        self.forbidden: set[tuple[str, str]] = set()  # (verb, plural) that answer 403
        self.exec_protocols: tuple[str, ...] = ("v5.channel.k8s.io", "v4.channel.k8s.io")
        self.exec_protocols_seen: list[str | None] = []
        self.stdin_closes = 0  # v5 close frames for stdin received
        # Called as before_write(method, path) before a write is served: a test's way to change
        # the object under a client's feet (then its resourceVersion is stale: 409).
        self.before_write: Callable[[str, str], None] | None = None
        self._lock = threading.Lock()
        self._watchers: set[_Watcher] = set()
        self._loop = asyncio.new_event_loop()
        self._port = port
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-kube",
                                        daemon=True)

    # Life

    def start(self) -> FakeKubernetes:
        """Start serving on 127.0.0.1 (an ephemeral port unless one was given)."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self._port

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self._port}"

    def close(self) -> None:
        """End every watch, stop serving and stop the loop."""
        if self._runner is not None:
            self.drop_watches()
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._runner = None
            # On a loaded machine a handler can outlive cleanup's grace period: end it
            # here, so that no connection is left to be closed by the garbage collector.
            asyncio.run_coroutine_threadsafe(_end_tasks(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> FakeKubernetes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def kubeconfig(self, path: Path, *, server: str | None = None,
                   namespace: str = "default", token: str = TOKEN) -> Path:
        """Write a kubeconfig file whose context ``fake`` talks to this server."""
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": server or self.url}}],
            "users": [{"name": "router", "user": {"token": token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "router",
                                                      "namespace": namespace}}],
        }))
        return path

    # Faults

    def forbid(self, verb: str, plural: str) -> None:
        """Answer 403 to ``verb`` (get, list, watch, create, update...) on ``plural``."""
        with self._lock:
            self.forbidden.add((verb, plural))

    def allow(self, verb: str, plural: str) -> None:
        """Undo :meth:`forbid`."""
        with self._lock:
            self.forbidden.discard((verb, plural))

    def compact(self) -> None:
        """Forget the history: a watch from any version before now gets 410 Gone."""
        with self._lock:
            self.history.clear()
            self.compacted = self.rv + 1

    def change_unseen(self, plural: str, labels: dict[str, str]) -> None:
        """Set ``labels`` on every object of ``plural`` as if while every watch was away: new
        resourceVersions, no watch event, no history (call :meth:`compact` next)."""
        with self._lock:
            for key, obj in list(self.objects.items()):
                if key[0] == plural:
                    new = copy.deepcopy(obj)
                    new["metadata"].setdefault("labels", {}).update(labels)
                    self.rv += 1
                    new["metadata"]["resourceVersion"] = str(self.rv)
                    self.objects[key] = new

    def drop_watches(self) -> None:
        """End every open watch stream, as a restarting API server or a load balancer does."""
        with self._lock:
            watchers = list(self._watchers)
        for watcher in watchers:
            self._loop.call_soon_threadsafe(watcher.queue.put_nowait, None)

    def watch_count(self, plural: str) -> int:
        """How many watches of ``plural`` are open now."""
        with self._lock:
            return sum(1 for w in self._watchers if w.resource.plural == plural)

    # Playing the controller (and anyone else with write access)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of one stored object, or None."""
        with self._lock:
            obj = self.objects.get((plural, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def items(self, plural: str) -> list[dict[str, Any]]:
        """Copies of every stored object of ``plural``."""
        with self._lock:
            return [copy.deepcopy(o) for (p, _, _), o in self.objects.items() if p == plural]

    def put(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object as an administrator would (no checks but the schema)."""
        resource = self.resources[plural]
        meta = obj.setdefault("metadata", {})
        namespace = meta.get("namespace", "") if resource.namespaced else ""
        with self._lock:
            old = self.objects.get((plural, namespace, meta["name"]))
            obj = copy.deepcopy(obj)
            obj.setdefault("apiVersion", resource.api_version)
            obj.setdefault("kind", resource.kind)
            if old is None:
                self._stamp_new(obj)
            else:
                obj["metadata"] = {**old["metadata"], **obj["metadata"]}
            self._validate(resource, obj)
            return self._store(resource, "ADDED" if old is None else "MODIFIED", obj)

    def set_status(self, namespace: str, name: str, **status: Any) -> dict[str, Any]:
        """Merge ``status`` into a Sandbox's status (None removes a field), as a controller."""
        return self.patch("sandboxes", namespace, name, {"status": status})

    def patch(self, plural: str, namespace: str, name: str, patch: dict[str, Any], *,
              checked: bool = True) -> dict[str, Any]:
        """Merge-patch one object directly (spec, status or metadata alike). ``checked=False``
        skips the schema: an object written by a newer controller than our CRDs know."""
        resource = self.resources[plural]
        with self._lock:
            old = self.objects[(plural, namespace, name)]
            new = _merge(old, patch)
            if "status" in patch and resource.status:
                _stamp_status_write(new, "agenttier-controller")
            if checked:
                self._validate(resource, new)
            return self._store(resource, "MODIFIED", new)

    def remove(self, plural: str, namespace: str, name: str) -> None:
        """Remove an object at once (finalizers or not), as the controller's cleanup ends."""
        with self._lock:
            obj = self.objects[(plural, namespace, name)]
            self._remove(self.resources[plural], obj)

    def remove_finalizers(self, namespace: str, name: str) -> None:
        """Clear a Sandbox's finalizers; if it is being deleted, it goes."""
        with self._lock:
            obj = copy.deepcopy(self.objects[("sandboxes", namespace, name)])
            obj["metadata"].pop("finalizers", None)
            self._after_write(self.resources["sandboxes"], obj)

    def post_event(self, namespace: str, sandbox: str, reason: str, message: str, *,
                   type_: str = "Normal", count: int = 1,
                   name: str | None = None) -> dict[str, Any]:
        """Post (or, with the same ``name``, update) a core/v1 Event about a Sandbox."""
        with self._lock:
            target = self.objects[("sandboxes", namespace, sandbox)]
            old = self.objects.get(("events", namespace, name or ""))
        now = now_rfc3339()
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name or f"{sandbox}.{secrets.token_hex(8)}",
                         "namespace": namespace},
            "involvedObject": {"kind": "Sandbox", "apiVersion": "agenttier.io/v1alpha1",
                               "name": sandbox, "namespace": namespace,
                               "uid": target["metadata"]["uid"]},
            "reason": reason, "message": message, "type": type_, "count": count,
            "firstTimestamp": old["firstTimestamp"] if old else now, "lastTimestamp": now,
            "source": {"component": "agenttier-controller"},
        }
        return self.put("events", event)

    def add_pod(self, namespace: str, name: str, container: str = "sandbox") -> None:
        """Store a Pod whose one container is ``container``, for exec."""
        self.put("pods", {"metadata": {"name": name, "namespace": namespace},
                          "spec": {"containers": [{"name": container, "image": "busybox"}]}})

    # Store internals (need self._lock)

    def _stamp_new(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta.setdefault("generation", 1)

    def _validate(self, resource: Resource, obj: dict[str, Any]) -> None:
        if resource.validator is None:
            return
        error = jsonschema.exceptions.best_match(resource.validator.iter_errors(obj))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path)
            why = f"{resource.kind} {obj['metadata'].get('name')!r} is invalid: {where}: " \
                  f"{error.message}"
            self.rejected.append((resource.plural, why))
            raise _Refused(422, "Invalid", why) from None

    def _store(self, resource: Resource, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.rv)
        key = (resource.plural, meta.get("namespace", ""), meta["name"])
        self.objects[key] = obj
        self._publish(resource, kind, obj)
        return copy.deepcopy(obj)

    def _remove(self, resource: Resource, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        meta = obj["metadata"]
        del self.objects[(resource.plural, meta.get("namespace", ""), meta["name"])]
        self._publish(resource, "DELETED", obj)

    def _after_write(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(resource, obj)
            return obj
        return self._store(resource, "MODIFIED", obj)

    def _publish(self, resource: Resource, kind: str, obj: dict[str, Any]) -> None:
        snapshot = copy.deepcopy(obj)
        self.history.append((self.rv, resource.plural, kind, snapshot))
        for watcher in self._watchers:
            if watcher.resource is resource and self._visible(watcher, snapshot):
                self._loop.call_soon_threadsafe(watcher.queue.put_nowait,
                                                {"type": kind, "object": snapshot})

    @staticmethod
    def _visible(watcher: _Watcher, obj: dict[str, Any]) -> bool:
        if watcher.namespace and obj["metadata"].get("namespace") != watcher.namespace:
            return False
        return _matches(obj, watcher.labels, watcher.fields)

    # HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query)))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response(_status(401, "Unauthorized", "Unauthorized"), status=401)
        try:
            return await self._route(request)
        except _Refused as refused:
            return refused.response()

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, rest = parts[1], parts[3:]
        else:
            raise _Refused(404, "NotFound", f"the server could not find {request.path}")
        namespace = None
        if len(rest) >= 2 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or rest[0] not in self.resources:
            raise _Refused(404, "NotFound", f"the server could not find {request.path}")
        resource = self.resources[rest[0]]
        if resource.group != group:
            raise _Refused(404, "NotFound", f"the server could not find {request.path}")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        query = request.query
        watching = query.get("watch") in ("true", "1")
        verb = {"GET": "watch" if watching else ("get" if name else "list"), "POST": "create",
                "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(request.method, "")
        if sub == "exec":
            verb = "create"
        plural = f"{resource.plural}/{sub}" if sub else resource.plural
        with self._lock:
            denied = (verb, plural) in self.forbidden or (verb, resource.plural) in self.forbidden
        if denied:
            scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
            raise _Refused(403, "Forbidden",
                           f'{resource.full} is forbidden: User "system:serviceaccount:'
                           f'agenttier:router" cannot {verb} resource "{plural}" in API group '
                           f'"{resource.group}" {scope}')
        if sub == "exec":
            return await self._exec(request, resource, namespace or "", name or "")
        if request.method in ("POST", "PUT", "PATCH", "DELETE") and self.before_write:
            hook, self.before_write = self.before_write, None  # once
            await asyncio.get_running_loop().run_in_executor(None, hook, request.method,
                                                             request.path)
        if sub not in (None, "status") or (sub == "status" and not resource.status):
            raise _Refused(404, "NotFound", f"the server could not find {request.path}")
        if request.method == "GET" and name is None:
            labels = _selector(query.get("labelSelector", ""), "label")
            fields = _selector(query.get("fieldSelector", ""), "field")
            if watching:
                return await self._watch(request, resource, namespace, labels, fields)
            return self._list(resource, namespace, labels, fields)
        if request.method == "POST" and name is None:
            return self._create(resource, namespace, await request.json())
        if name is None:
            raise _Refused(405, "MethodNotAllowed", "the server does not allow this method")
        key = (resource.plural, namespace or "", name)
        if request.method == "GET":
            with self._lock:
                obj = self.objects.get(key)
                if obj is None:
                    raise self._not_found(resource, name)
                return web.json_response(obj)
        if request.method == "PUT":
            return self._update(resource, key, await request.json(), sub)
        if request.method == "PATCH":
            kind = request.content_type
            if kind != "application/merge-patch+json":
                raise _Refused(415, "UnsupportedMediaType",
                               f"the body of the request was in an unknown format - {kind}")
            return self._patch(resource, key, await request.json(), sub)
        if request.method == "DELETE":
            return self._delete(resource, key)
        raise _Refused(405, "MethodNotAllowed", "the server does not allow this method")

    @staticmethod
    def _not_found(resource: Resource, name: str) -> _Refused:
        return _Refused(404, "NotFound", f'{resource.full} "{name}" not found')

    def _list(self, resource: Resource, namespace: str | None, labels: list[Any],
              fields: list[Any]) -> web.Response:
        with self._lock:
            items = [o for (p, ns, _), o in self.objects.items() if p == resource.plural
                     and (namespace is None or ns == namespace) and _matches(o, labels, fields)]
            body = {"apiVersion": resource.api_version, "kind": f"{resource.kind}List",
                    "metadata": {"resourceVersion": str(self.rv)}, "items": items}
            return web.json_response(body)

    def _create(self, resource: Resource, namespace: str | None,
                body: dict[str, Any]) -> web.Response:
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            raise _Refused(400, "BadRequest", "the object has no metadata")
        meta = body["metadata"]
        if resource.namespaced and meta.setdefault("namespace", namespace) != namespace:
            raise _Refused(400, "BadRequest", "the namespace of the provided object does "
                                              "not match the namespace sent on the request")
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise _Refused(422, "Invalid", "metadata.name: Required value")
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        for forbidden in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"):
            meta.pop(forbidden, None)
        if resource.status:
            body.pop("status", None)
        body.setdefault("apiVersion", resource.api_version)
        body.setdefault("kind", resource.kind)
        with self._lock:
            key = (resource.plural, meta.get("namespace", "") or "", meta["name"])
            if key in self.objects:
                raise _Refused(409, "AlreadyExists",
                               f'{resource.full} "{meta["name"]}" already exists')
            self._stamp_new(body)
            self._validate(resource, body)
            self.writes.append(("create", resource.plural, copy.deepcopy(body)))
            return web.json_response(self._store(resource, "ADDED", body), status=201)

    def _check_version(self, resource: Resource, old: dict[str, Any], new_meta: Any,
                       required: bool) -> None:
        given = new_meta.get("resourceVersion") if isinstance(new_meta, dict) else None
        if given is None and required:
            raise _Refused(422, "Invalid", f'{resource.kind} "{old["metadata"]["name"]}" is '
                           "invalid: metadata.resourceVersion: Invalid value: 0x0: must be "
                           "specified for an update")
        if given is not None and given != old["metadata"]["resourceVersion"]:
            raise _Refused(409, "Conflict",
                           f'Operation cannot be fulfilled on {resource.full} '
                           f'"{old["metadata"]["name"]}": the object has been modified; please '
                           "apply your changes to the latest version and try again")

    def _write(self, resource: Resource, old: dict[str, Any], new: dict[str, Any],
               sub: str | None, verb: str) -> web.Response:
        new = copy.deepcopy(new)
        # Identity and server-set fields stay the server's.
        for kept in ("uid", "creationTimestamp", "name", "namespace", "deletionTimestamp"):
            if kept in old["metadata"]:
                new["metadata"][kept] = old["metadata"][kept]
        if resource.status:
            if sub == "status":
                new = {**copy.deepcopy(old), "status": new.get("status")}
                if new["status"] is None:
                    del new["status"]
                _stamp_status_write(new, "agenttier-router")
            elif "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        self._validate(resource, new)
        self.writes.append((f"{verb}{'/status' if sub else ''}", resource.plural,
                            copy.deepcopy(new)))
        return web.json_response(self._after_write(resource, new))

    def _update(self, resource: Resource, key: tuple[str, str, str], body: Any,
                sub: str | None) -> web.Response:
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            raise _Refused(400, "BadRequest", "the object has no metadata")
        with self._lock:
            old = self.objects.get(key)
            if old is None:
                raise self._not_found(resource, key[2])
            self._check_version(resource, old, body["metadata"], required=True)
            return self._write(resource, old, body, sub, "update")

    def _patch(self, resource: Resource, key: tuple[str, str, str], patch: Any,
               sub: str | None) -> web.Response:
        if not isinstance(patch, dict):
            raise _Refused(400, "BadRequest", "a merge patch must be a JSON object")
        with self._lock:
            old = self.objects.get(key)
            if old is None:
                raise self._not_found(resource, key[2])
            self._check_version(resource, old, patch.get("metadata"), required=False)
            return self._write(resource, old, _merge(old, patch), sub, "patch")

    def _delete(self, resource: Resource, key: tuple[str, str, str]) -> web.Response:
        with self._lock:
            old = self.objects.get(key)
            if old is None:
                raise self._not_found(resource, key[2])
            self.writes.append(("delete", resource.plural, copy.deepcopy(old)))
            if old["metadata"].get("finalizers"):
                if not old["metadata"].get("deletionTimestamp"):
                    new = copy.deepcopy(old)
                    new["metadata"]["deletionTimestamp"] = now_rfc3339()
                    return web.json_response(self._store(resource, "MODIFIED", new))
                return web.json_response(old)
            self._remove(resource, old)
            return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                      "status": "Success",
                                      "details": {"name": key[2], "kind": resource.plural,
                                                  "uid": old["metadata"]["uid"]}})

    async def _watch(self, request: web.Request, resource: Resource, namespace: str | None,
                     labels: list[Any], fields: list[Any]) -> web.StreamResponse:
        query = request.query
        timeout = float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        watcher = _Watcher(resource, namespace, labels, fields)
        since = query.get("resourceVersion") or ""
        with self._lock:
            if since in ("", "0"):
                backlog = [{"type": "ADDED", "object": copy.deepcopy(o)}
                           for (p, _, _), o in self.objects.items()
                           if p == resource.plural and self._visible(watcher, o)]
            elif int(since) < self.compacted - 1:
                backlog = [{"type": "ERROR", "object": _status(
                    410, "Expired", f"too old resource version: {since} "
                                    f"({self.compacted - 1})")}]
                watcher = None  # type: ignore[assignment]
            else:
                backlog = [{"type": kind, "object": obj} for rv, p, kind, obj in self.history
                           if rv > int(since) and p == resource.plural
                           and self._visible(watcher, obj)]
            if watcher is not None:
                self._watchers.add(watcher)
            current = self.rv
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            for item in backlog:
                await response.write(json.dumps(item).encode() + b"\n")
            if watcher is None:
                return response
            deadline = self._loop.time() + timeout
            while True:
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), remaining)
                except TimeoutError:
                    break
                if item is None:  # dropped
                    return response
                await response.write(json.dumps(item).encode() + b"\n")
            if bookmarks:
                with self._lock:
                    current = self.rv
                mark = {"type": "BOOKMARK", "object": {
                    "apiVersion": resource.api_version, "kind": resource.kind,
                    "metadata": {"resourceVersion": str(current)}}}
                await response.write(json.dumps(mark).encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            with self._lock:
                self._watchers.discard(watcher)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _exec(self, request: web.Request, resource: Resource, namespace: str,
                    name: str) -> web.StreamResponse:
        if resource.plural != "pods":
            raise _Refused(404, "NotFound", "exec is a subresource of pods")
        with self._lock:
            pod = self.objects.get(("pods", namespace, name))
        if pod is None:
            raise self._not_found(resource, name)
        container = request.query.get("container", "")
        names = [c["name"] for c in pod["spec"]["containers"]]
        if container not in names:
            raise _Refused(400, "BadRequest",
                           f"container {container} is not valid for pod {name}")
        command = request.query.getall("command", [])
        feeding = request.query.get("stdin") in ("true", "1")
        socket = web.WebSocketResponse(protocols=self.exec_protocols)
        await socket.prepare(request)
        self.exec_protocols_seen.append(socket.ws_protocol)
        v5 = socket.ws_protocol == "v5.channel.k8s.io"
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE if feeding else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)

        async def pump(stream: asyncio.StreamReader, channel: int) -> None:
            while chunk := await stream.read(32768):
                await socket.send_bytes(bytes([channel]) + chunk)

        def end_stdin() -> None:
            if process.stdin is not None and not process.stdin.is_closing():
                process.stdin.close()

        async def feed(data: bytes) -> None:
            if process.stdin is None or process.stdin.is_closing():
                return
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                process.stdin.write(data)
                await process.stdin.drain()  # back-pressure: the socket waits on the pipe

        async def client_gone() -> None:
            async for message in socket:
                if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
                if not feeding or message.type is not WSMsgType.BINARY or not message.data:
                    continue
                data: bytes = message.data
                if data[0] == 0:
                    await feed(data[1:])
                elif data[0] == CLOSE_CHANNEL and v5 and data[1:2] == b"\0":
                    self.stdin_closes += 1
                    end_stdin()
            end_stdin()

        assert process.stdout is not None and process.stderr is not None
        work = asyncio.gather(pump(process.stdout, 1), pump(process.stderr, 2), process.wait())
        watcher = asyncio.ensure_future(client_gone())
        try:
            done, _ = await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if work in done and not socket.closed:
                code = process.returncode
                if code == 0:
                    status: dict[str, Any] = {"metadata": {}, "status": "Success"}
                else:
                    status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                              "message": f"command terminated with non-zero exit code: "
                                         f"exit code {code}",
                              "details": {"causes": [{"reason": "ExitCode",
                                                      "message": str(code)}]}}
                await socket.send_bytes(bytes([STATUS_CHANNEL]) + json.dumps(status).encode())
                await socket.close()
        except ConnectionResetError:
            pass
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
            work.cancel()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
        return socket

