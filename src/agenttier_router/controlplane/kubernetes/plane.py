"""The ``kubernetes`` control plane: sandboxes are AgentTier ``Sandbox`` custom resources.

The Router keeps no state of its own: AgentTier's controller runs the
sandboxes, and this plane writes what upstream's Router writes (facts,
sections 4-7) and reads everything from informers (:mod:`.informer`), so that
``get``, ``list`` and ``named`` never call the API server. Any number of
Routers may run against one cluster: every transition and Event they report
carries an id derived from the objects alone (:mod:`.objects`, :mod:`.events`),
so the storage keeps one copy of each without any leader election.

::

    plane = KubernetesControlPlane(api_client, recorder_sink, namespace="team-a")
    plane.wait_synced(10)
    plane.create("sb-1", "team-a", "general-coding", owner="alice", owner_email="a@x.io")
"""

from __future__ import annotations

import copy
import functools
import logging
import posixpath
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from ..base import (
    ControlPlane,
    ControlPlaneUnavailable,
    ExecResult,
    InvalidRequest,
    Phase,
    Sandbox,
    SandboxChange,
    SandboxConflict,
    SandboxNotFound,
    ShareLevel,
    ShareLink,
    ShareLinkNotFound,
    ShareLinkRedeemed,
    Template,
    Transition,
    TransitionSink,
)
from ..changes import checked
from ..checks import check_command, check_identity, check_label, check_timeout
from ..files import WORKSPACE
from ..sharelinks import (
    check_kind,
    check_new_link,
    is_token_hash,
    new_link_id,
    redeem_decision,
    same_hash,
)
from ._api import (
    ACTION_ANNOTATION,
    API_VERSION,
    GROUP,
    VERSION,
    RateLimitedWarning,
    decode,
    translate,
)
from .events import FIELD_SELECTOR, event_about, router_event, stand_in, transition_of_event
from .exec import CONTAINER, run_in_pod
from .files import KubernetesFiles
from .informer import Informer, Key, key_of
from .objects import (
    format_time,
    link_hash,
    link_of,
    meta,
    parse_time,
    phase_of,
    sandbox_from,
    transition_for,
)
from .templates import CLUSTER_KIND, NAMESPACED_KIND, effective_template, resolve
from .updates import apply_change, running_spec

__all__ = ["KubernetesControlPlane"]

_log = logging.getLogger(__name__)

_CONFLICT_RETRIES = 5
_TOMBSTONES = 1_000
_MERGE_PATCH = "application/merge-patch+json"
_Sharing = dict[str, list[dict[str, Any]]]
"""``spec.sharing``'s users, groups and shareLinks lists, by field."""
_SHARING_FIELDS = ("users", "groups", "shareLinks")
_Transitions = list[Transition]  # ("list" is a method's name inside the class)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class KubernetesControlPlane:
    """Drives AgentTier ``Sandbox`` resources through the Kubernetes API (see the module doc).

    ``api_client`` is the official client's ``ApiClient`` (see :func:`from_url`
    for one built from a kubeconfig). ``namespace`` restricts the plane to one
    namespace; None watches all. Transitions (phase changes seen in the watch,
    and Kubernetes Events about Sandboxes) go to ``sink``, on the informers'
    threads, in order for each sandbox.

    Starting is asynchronous: the constructor starts the informers and
    returns. Until they have listed, every method raises
    :class:`ControlPlaneUnavailable` (the API answers 503), naming what is wrong
    (the API server cannot be reached, RBAC forbids a verb...); they recover
    by themselves.
    """

    def __init__(
        self,
        api_client: ApiClient,
        sink: TransitionSink,
        *,
        namespace: str | None = None,
        default_namespace: str = "default",
        watch_timeout: float = 300.0,
        exec_container: str = CONTAINER,
        backoff: tuple[float, float] = (0.1, 5.0),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if namespace is not None:
            check_label(namespace, "namespace")
        self._api = api_client
        self._custom = CustomObjectsApi(api_client)
        self._core = CoreV1Api(api_client)
        self._namespace = namespace
        self._default_namespace = namespace or default_namespace
        self._sink = sink
        self._clock = clock
        self._container = exec_container
        self._warn = RateLimitedWarning(_log)
        self._lock = threading.Lock()
        self._sandboxes: dict[Key, Sandbox] = {}  # as the watch last delivered them
        self._versions: dict[Key, int] = {}  # their resourceVersions
        # Our own writes' answers (read-your-writes), until the watch catches up with them:
        # key -> (resourceVersion, object, sandbox, uid); (maxsize, None, None, uid) once deleted.
        self._written: dict[Key, tuple[int, dict[str, Any] | None, Sandbox | None, str]] = {}
        self._by_name: dict[str, set[str]] = {}
        self._last_ids: dict[str, str] = {}  # sandbox uid -> the id of its last transition
        self._gone: OrderedDict[str, Sandbox] = OrderedDict()  # uid -> last state, bounded
        self._templates_version = 0
        self._templates_cache: tuple[int, Mapping[str, Template]] | None = None
        self._closed = False
        self._files = KubernetesFiles(api_client, self._exec_target, container=exec_container)

        custom = self._custom
        if namespace is None:
            list_sandboxes = functools.partial(custom.list_cluster_custom_object, GROUP,
                                               VERSION, "sandboxes")
            list_templates = functools.partial(custom.list_cluster_custom_object, GROUP,
                                               VERSION, "sandboxtemplates")
            list_events: Callable[..., Any] = self._core.list_event_for_all_namespaces
        else:
            list_sandboxes = functools.partial(custom.list_namespaced_custom_object, GROUP,
                                               VERSION, namespace, "sandboxes")
            list_templates = functools.partial(custom.list_namespaced_custom_object, GROUP,
                                               VERSION, namespace, "sandboxtemplates")
            list_events = functools.partial(self._core.list_namespaced_event, namespace)
        self._cluster_templates = Informer(
            "clustersandboxtemplates",
            functools.partial(custom.list_cluster_custom_object, GROUP, VERSION,
                              "clustersandboxtemplates"),
            self._on_template, on_synced=self._templates_synced, watch_timeout=watch_timeout,
            backoff=backoff)
        self._ns_templates = Informer("sandboxtemplates", list_templates, self._on_template,
                                      on_synced=self._templates_synced,
                                      watch_timeout=watch_timeout, backoff=backoff)
        self._informer = Informer("sandboxes", list_sandboxes, self._on_sandbox,
                                  on_synced=self._sandboxes_synced,
                                  watch_timeout=watch_timeout, backoff=backoff)
        self._events = Informer("events", list_events, self._on_event,
                                field_selector=FIELD_SELECTOR, watch_timeout=watch_timeout,
                                backoff=backoff)
        self._started: set[str] = set()
        self._start_lock = threading.Lock()
        self._cluster_templates.start()
        self._ns_templates.start()

    def __repr__(self) -> str:
        scope = repr(self._namespace) if self._namespace else "all namespaces"
        return (f"KubernetesControlPlane(host={self._api.configuration.host!r}, "
                f"namespace={scope}, sandboxes={len(self._sandboxes)})")

    # Life

    def _templates_synced(self) -> None:
        if self._cluster_templates.synced and self._ns_templates.synced:
            self._start_once(self._informer)

    def _sandboxes_synced(self) -> None:
        # Events are read once the sandboxes are known, so that each finds its sandbox.
        self._start_once(self._events)

    def _start_once(self, informer: Informer) -> None:
        with self._start_lock:
            if informer.name in self._started or self._closed:
                return
            self._started.add(informer.name)
        informer.start()

    def wait_synced(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until templates, sandboxes and Events are listed."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            for informer in (self._cluster_templates, self._ns_templates, self._informer,
                             self._events):
                while not informer.wait_synced(0.05):
                    if deadline.is_set():
                        return False
            return True
        finally:
            timer.cancel()

    def problem(self) -> ControlPlaneUnavailable | None:
        """Why the plane cannot serve now (for readiness), or None when it can."""
        for informer in (self._cluster_templates, self._ns_templates, self._informer,
                         self._events):
            problem = informer.problem
            if problem is not None:
                if isinstance(problem, ControlPlaneUnavailable):
                    return problem
                return ControlPlaneUnavailable(str(problem))
        for informer in (self._cluster_templates, self._ns_templates, self._informer):
            if not informer.synced:
                return ControlPlaneUnavailable(
                    f"not yet synced with the Kubernetes API server ({informer.name})",
                    retry_after=1.0)
        return None

    def close(self) -> None:
        """Stop every informer; the sandboxes themselves live on in the cluster."""
        with self._start_lock:
            self._closed = True
        for informer in (self._events, self._informer, self._ns_templates,
                         self._cluster_templates):
            informer.close()

    # Reading (from memory only)

    def _require_synced(self, *informers: Informer) -> None:
        for informer in informers or (self._informer,):
            if not informer.synced:
                problem = self.problem()
                raise problem or ControlPlaneUnavailable(
                    "not yet synced with the Kubernetes API server", retry_after=1.0)

    def templates(self) -> Mapping[str, Template]:
        """The ClusterSandboxTemplates, ``inheritsFrom`` resolved, by name (read-only).

        A template that cannot be resolved (a missing parent, a cycle) is left
        out, with a rate-limited warning.
        """
        self._require_synced(self._cluster_templates, self._ns_templates)
        with self._lock:
            cached = self._templates_cache
            version = self._templates_version
        if cached is not None and cached[0] == version:
            return cached[1]
        found: dict[str, Template] = {}
        for obj in self._cluster_templates.objects():
            name = str(meta(obj).get("name", ""))
            try:
                merged = resolve(CLUSTER_KIND, name, self._default_namespace, self._lookup)
            except InvalidRequest as error:
                self._warn(f"template/{name}", "ClusterSandboxTemplate %r is left out: %s",
                           name, error)
                continue
            found[name] = effective_template(name, merged)
        result: Mapping[str, Template] = MappingProxyType(dict(sorted(found.items())))
        with self._lock:
            if self._templates_version == version:
                self._templates_cache = (version, result)
        return result

    def get(self, name: str, namespace: str) -> Sandbox:
        """Return one sandbox, from memory, or raise :class:`SandboxNotFound`."""
        self._require_synced()
        sandbox = self._known((namespace, name))
        if sandbox is None:
            raise SandboxNotFound(f"no sandbox {name!r} in namespace {namespace!r}")
        return sandbox

    def named(self, name: str) -> list[Sandbox]:
        """Every sandbox called ``name``, in any namespace, by namespace (from memory)."""
        self._require_synced()
        with self._lock:
            namespaces = set(self._by_name.get(name, ()))
            namespaces.update(ns for ns, n in self._written if n == name)
        found = (self._known((ns, name)) for ns in sorted(namespaces))
        return [s for s in found if s is not None]

    def list(self, namespace: str | None = None) -> list[Sandbox]:
        """Every sandbox, or those of one namespace, oldest first (from memory)."""
        self._require_synced()
        with self._lock:
            current = dict(self._sandboxes)
            for key, (_, _, sandbox, _) in self._written.items():
                if sandbox is None:
                    current.pop(key, None)
                else:
                    current[key] = sandbox
        found = [s for s in current.values() if namespace is None or s.namespace == namespace]
        found.sort(key=lambda s: (s.created_at, s.name, s.namespace))  # ties: by name
        return found

    # Writing

    def create(
        self, name: str, namespace: str, template: str, owner: str, owner_email: str
    ) -> Sandbox:
        """Write a Sandbox with ``templateRef`` and ``createdBy``; the controller runs it.

        Raises :class:`InvalidRequest` for a bad name or an unknown template, and
        :class:`SandboxConflict` if the name is taken in that namespace.
        """
        check_label(name, "name")
        check_label(namespace, "namespace")
        for value, what in ((owner, "owner"), (owner_email, "owner_email")):
            if not isinstance(value, str):
                raise InvalidRequest(f"{what} must be a string")
        self._check_namespace(namespace)
        self._require_synced(self._cluster_templates, self._ns_templates)
        kind = self._template_kind(template, namespace)
        created_by: dict[str, str] = {}
        if owner:
            created_by["sub"] = owner
            if owner_email:
                created_by["email"] = owner_email
        spec: dict[str, Any] = {"templateRef": {"name": template, "kind": kind}}
        if created_by:
            spec["createdBy"] = created_by
        body = {"apiVersion": API_VERSION, "kind": "Sandbox",
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        try:
            with translate("create", "sandboxes", namespace=namespace):
                response = self._custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, "sandboxes", body, _preload_content=False)
        except SandboxConflict as error:
            raise SandboxConflict(
                f"sandbox {name!r} already exists in namespace {namespace!r}") from error
        return self._remember(decode(response))

    def stop(self, name: str, namespace: str) -> Sandbox:
        """Ask the controller to stop a Running sandbox (annotation ``agenttier.io/action:
        stop``, with a full update); it is Stopped once the controller has acted.

        Raises :class:`SandboxConflict` (``cannot stop sandbox in phase P``) otherwise.
        """
        def mark(obj: dict[str, Any]) -> None:
            _require_phase(obj, "stop", Phase.RUNNING)
            obj.setdefault("metadata", {}).setdefault("annotations", {})[ACTION_ANNOTATION] = \
                "stop"

        return self._update(name, namespace, mark, status=False)

    def resume(self, name: str, namespace: str) -> Sandbox:
        """Resume a Stopped or Error sandbox: a status update to Creating, message ``Resuming``.

        Raises :class:`SandboxConflict` (``cannot resume sandbox in phase P``) otherwise.
        """
        def mark(obj: dict[str, Any]) -> None:
            _require_phase(obj, "resume", Phase.STOPPED, Phase.ERROR)
            status = obj.setdefault("status", {})
            status["phase"] = Phase.CREATING.value
            status["message"] = "Resuming"

        return self._update(name, namespace, mark, status=True)

    def delete(self, name: str, namespace: str) -> None:
        """Delete the Sandbox; the controller removes its pod and volume, then its finalizer."""
        self._check_namespace(namespace)
        self._require_synced()
        with translate("delete", "sandboxes", namespace=namespace, name=name):
            response = self._custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, "sandboxes", name, _preload_content=False)
        answer = decode(response)
        if isinstance(answer, dict) and answer.get("kind") == "Sandbox":
            self._remember(answer)  # held by a finalizer: now Deleting
        else:
            gone = self._known((namespace, name))
            with self._lock:  # gone; until the watch says so too
                self._written[(namespace, name)] = (sys.maxsize, None, None,
                                                    gone.uid if gone else "")

    def exec(self, name: str, namespace: str, command: str, timeout: float) -> ExecResult:
        """Run ``/bin/sh -c command`` in the sandbox pod's ``sandbox`` container (pods/exec).

        Raises :class:`SandboxConflict` (``sandbox is not running``) unless Running.
        """
        check_command(command)
        check_timeout(timeout)
        pod, _ = self._exec_target(name, namespace)
        return run_in_pod(self._api, namespace, pod, command, float(timeout),
                          container=self._container)

    @property
    def files(self) -> KubernetesFiles:
        """The sandboxes' files, through ``pods/exec`` in their pods (:mod:`.files`)."""
        return self._files

    def _exec_target(self, name: str, namespace: str) -> tuple[str, str]:
        """A Running sandbox's pod and workspace root; :class:`SandboxConflict` otherwise."""
        sandbox = self.get(name, namespace)
        obj = self._raw((namespace, name)) or {}
        status = obj.get("status") if isinstance(obj.get("status"), dict) else {}
        pod = status.get("podName") if isinstance(status, dict) else None
        if sandbox.phase is not Phase.RUNNING or not isinstance(pod, str) or not pod:
            raise SandboxConflict("sandbox is not running")
        return pod, self._mount_path(obj)

    def _mount_path(self, obj: Mapping[str, Any]) -> str:
        """``spec.storage.mountPath``: the sandbox's own, else its template's, else /workspace."""
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        storage = spec.get("storage")
        path = storage.get("mountPath") if isinstance(storage, dict) else None
        if not path:
            merged = self._resolved_template(obj)[1]
            storage = merged.get("storage")
            path = storage.get("mountPath") if isinstance(storage, dict) else None
        path = path or WORKSPACE
        if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
            raise InvalidRequest(f"the sandbox's storage.mountPath {path!r} is not an "
                                 "absolute path")
        return posixpath.normpath(path)

    def share(self, name: str, namespace: str, kind: Literal["user", "group"], identity: str,
              level: ShareLevel) -> Sandbox:
        """Grant (or change) a share: a merge patch of ``spec.sharing`` carrying the object's
        ``resourceVersion`` (retried on 409), then a ``ShareGranted`` Event."""
        if kind not in ("user", "group"):
            raise InvalidRequest(f"kind must be 'user' or 'group' (got {kind!r})")
        if level not in ("viewer", "collaborator"):
            raise InvalidRequest(f"level must be 'viewer' or 'collaborator' (got {level!r})")
        check_identity(identity)
        field = "users" if kind == "user" else "groups"

        def grant(sharing: _Sharing, obj: dict[str, Any]) -> bool:
            entries = sharing[field]
            for entry in entries:
                if entry.get("identity") == identity:
                    if entry.get("level") == level:
                        return False
                    entry["level"] = level
                    return True
            entries.append({"identity": identity, "level": level})
            return True

        return self._patch_sharing(name, namespace, grant, "ShareGranted", identity)

    def unshare(self, name: str, namespace: str, identity: str,
                kind: Literal["user", "group"] | None = None) -> Sandbox:
        """Revoke the shares ``identity`` holds, only its user or group one with ``kind``
        (none is fine), as :meth:`share` does, then a ``ShareRevoked`` Event."""
        check_identity(identity)
        check_kind(kind)
        fields = ("users", "groups") if kind is None else ("users" if kind == "user"
                                                           else "groups",)

        def revoke(sharing: _Sharing, obj: dict[str, Any]) -> bool:
            changed = False
            for field in fields:
                kept = [e for e in sharing[field] if e.get("identity") != identity]
                changed = changed or len(kept) != len(sharing[field])
                sharing[field] = kept
            return changed

        return self._patch_sharing(name, namespace, revoke, "ShareRevoked", identity)

    # Share links (issue 12): entries of spec.sharing.shareLinks, written like shares (a merge
    # patch carrying the resourceVersion, retried on 409), so that a use counted by one Router
    # is never lost or doubled by another.

    def create_share_link(self, name: str, namespace: str, *, token_hash: str,
                          level: ShareLevel, expires_at: datetime | None,
                          max_uses: int) -> ShareLink:
        """Append ``{id, tokenHash, level, expiresAt, maxUses, usedCount: 0}`` to
        ``spec.sharing.shareLinks``, then a ``ShareLinkCreated`` Event (message: the id)."""
        check_new_link(token_hash, level, expires_at, max_uses)
        made: list[ShareLink] = []

        def add(sharing: _Sharing, obj: dict[str, Any]) -> bool:
            links = sharing["shareLinks"]
            if any(same_hash(link_hash(e), token_hash) for e in links):
                raise SandboxConflict("a share link with this token already exists")
            taken = {e.get("id") for e in links}
            link_id = new_link_id()
            while link_id in taken:
                link_id = new_link_id()
            entry: dict[str, Any] = {"id": link_id, "tokenHash": token_hash, "level": level,
                                     "maxUses": max_uses, "usedCount": 0}
            if expires_at is not None:
                entry["expiresAt"] = format_time(expires_at)
            links.append(entry)
            made[:] = [ShareLink(id=link_id, level=level, max_uses=max_uses,
                                 expires_at=parse_time(entry.get("expiresAt")))]
            return True

        self._patch_sharing(name, namespace, add, "ShareLinkCreated", lambda: made[0].id)
        return made[0]

    def revoke_share_link(self, name: str, namespace: str, link_id: str) -> Sandbox:
        """Remove the entry with ``id`` from ``spec.sharing.shareLinks`` (a ``ShareLinkRevoked``
        Event follows); :class:`ShareLinkNotFound` when there is none."""
        def remove(sharing: _Sharing, obj: dict[str, Any]) -> bool:
            kept = [e for e in sharing["shareLinks"] if e.get("id") != link_id]
            if len(kept) == len(sharing["shareLinks"]):
                raise ShareLinkNotFound(f"no share link {link_id!r} on sandbox {name!r} in "
                                        f"namespace {namespace!r}")
            sharing["shareLinks"] = kept
            return True

        return self._patch_sharing(name, namespace, remove, "ShareLinkRevoked", link_id)

    def redeem_share_link(self, token_hash: str, identity: str) -> ShareLinkRedeemed:
        """Find the link by its hash in the informer's cache, then, in one patch with the
        object's resourceVersion, add one to its ``usedCount`` and grant ``identity`` its
        level as a user (a ``ShareGranted`` Event follows). A lost race re-reads the object
        and decides again, so a link with one use left is used exactly once."""
        check_identity(identity)
        self._require_synced()
        key = self._sandbox_with_link(token_hash) if is_token_hash(token_hash) else None
        if key is None:
            raise ShareLinkNotFound("share link not found")
        done: list[tuple[ShareLink, ShareLevel]] = []

        def use(sharing: _Sharing, obj: dict[str, Any]) -> bool:
            links = sharing["shareLinks"]
            index = next((i for i, e in enumerate(links)
                          if same_hash(link_hash(e), token_hash)), None)
            link = link_of(links[index]) if index is not None else None
            if index is None or link is None:
                raise ShareLinkNotFound("share link not found")  # revoked meanwhile
            level = redeem_decision(self._convert_or_fail(obj), link, identity, self._clock())
            links[index]["usedCount"] = link.used_count + 1
            mine = [e for e in sharing["users"] if e.get("identity") == identity]
            for entry in mine:
                entry["level"] = level
            if not mine:
                sharing["users"].append({"identity": identity, "level": level})
            done[:] = [(replace(link, used_count=link.used_count + 1), level)]
            return True

        sandbox = self._patch_sharing(key[1], key[0], use, "ShareGranted", identity)
        return ShareLinkRedeemed(sandbox, done[0][0], done[0][1])

    def _sandbox_with_link(self, token_hash: str) -> Key | None:
        """The sandbox holding a link with that hash, from memory (our newer writes first).

        Every stored hash is compared, in constant time, whatever matched before.
        """
        with self._lock:
            written = {key: w[1] for key, w in self._written.items()}
        current: dict[Key, Mapping[str, Any]] = {key_of(o): o for o in self._informer.objects()}
        for key, newer in written.items():
            if newer is None:
                current.pop(key, None)
            else:
                current[key] = newer
        found: Key | None = None
        for key, obj in current.items():
            spec = obj.get("spec")
            sharing = spec.get("sharing") if isinstance(spec, dict) else None
            links = sharing.get("shareLinks") if isinstance(sharing, dict) else None
            for entry in links if isinstance(links, list) else []:
                if isinstance(entry, dict) and same_hash(link_hash(entry), token_hash):
                    found = found or key
        return found

    # -- Updating a sandbox (PATCH /sandboxes/{id}) --

    def update(self, name: str, namespace: str, change: SandboxChange) -> Sandbox:
        """Write an update with a full Update carrying the resourceVersion (retried on 409):
        ``spec.idleTimeout``, ``spec.resources`` merged over what the sandbox asks now, and
        labels and annotations merged into its metadata (:mod:`.updates` says how).

        The returned sandbox is priced from the resources its current run started
        with until the controller starts it again. Raises :class:`SandboxConflict`
        while it is Deleting.
        """
        change = checked(change)

        def write(obj: dict[str, Any]) -> None:
            phase = phase_of(obj)
            if phase is Phase.DELETING:
                raise SandboxConflict(f"cannot update sandbox {name!r}: it is Deleting")
            apply_change(obj, change, self._sandbox_template(obj),
                         self._template_resources(obj))

        return self._update(name, namespace, write, status=False)

    def _template_resources(self, obj: Mapping[str, Any]) -> object:
        """The ``resources`` of the sandbox's resolved template (None if it cannot be resolved)."""
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        ref = spec.get("templateRef")
        if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
            return None
        namespace = str(meta(obj).get("namespace", ""))
        try:
            merged = resolve(str(ref.get("kind") or NAMESPACED_KIND), ref["name"],
                             str(ref.get("namespace") or namespace), self._lookup)
        except InvalidRequest:
            return None
        return merged.get("resources")

    # --

    # Writing internals

    def _check_namespace(self, namespace: str) -> None:
        if self._namespace is not None and namespace != self._namespace:
            raise InvalidRequest(f"this Router manages namespace {self._namespace!r} only "
                                 f"(got {namespace!r})")

    def _fresh(self, name: str, namespace: str) -> dict[str, Any]:
        with translate("get", "sandboxes", namespace=namespace, name=name):
            response = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "sandboxes", name, _preload_content=False)
        obj: dict[str, Any] = decode(response)
        self._remember(obj)
        return copy.deepcopy(obj)

    def _current(self, name: str, namespace: str) -> dict[str, Any]:
        self._check_namespace(namespace)
        self._require_synced()
        obj = self._raw((namespace, name))
        if obj is None:
            raise SandboxNotFound(f"no sandbox {name!r} in namespace {namespace!r}")
        return obj

    def _update(self, name: str, namespace: str, change: Callable[[dict[str, Any]], None], *,
                status: bool) -> Sandbox:
        """PUT the changed object (or its status), re-reading it and retrying on 409 Conflict."""
        obj = self._current(name, namespace)
        call = (self._custom.replace_namespaced_custom_object_status if status
                else self._custom.replace_namespaced_custom_object)
        resource = "sandboxes/status" if status else "sandboxes"
        for attempt in range(_CONFLICT_RETRIES):
            try:
                change(obj)
            except SandboxConflict:
                if attempt:
                    raise
                # Our memory may lag the cluster by a moment (another replica just moved
                # it): a refusal is only final once the API server's copy agrees.
                obj = self._fresh(name, namespace)
                change(obj)
            with translate("update", resource, namespace=namespace, name=name):
                try:
                    response = call(GROUP, VERSION, namespace, "sandboxes", name, obj,
                                    _preload_content=False)
                except ApiException as error:
                    if error.status == 409 and attempt < _CONFLICT_RETRIES - 1:
                        obj = self._fresh(name, namespace)
                        continue
                    raise
            return self._remember(decode(response))
        raise SandboxConflict(f"sandbox {name!r} kept changing; try again")  # pragma: no cover

    def _patch_sharing(self, name: str, namespace: str,
                       change: Callable[[_Sharing, dict[str, Any]], bool],
                       reason: str, message: str | Callable[[], str]) -> Sandbox:
        """Merge-patch the lists of ``spec.sharing`` that ``change`` changed, with the object's
        resourceVersion; on 409, re-read the object and call ``change`` again."""
        obj = self._current(name, namespace)
        for attempt in range(_CONFLICT_RETRIES):
            spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
            raw = spec.get("sharing") if isinstance(spec, dict) else None
            raw = raw if isinstance(raw, dict) else {}
            sharing = {f: [dict(e) for e in raw.get(f) or [] if isinstance(e, dict)]
                       for f in _SHARING_FIELDS}
            before = copy.deepcopy(sharing)
            if not change(sharing, obj):
                return self._convert_or_fail(obj)
            changed = {f: v for f, v in sharing.items() if v != before[f]}
            patch = {"metadata": {"resourceVersion": meta(obj).get("resourceVersion")},
                     "spec": {"sharing": changed}}
            with translate("patch", "sandboxes", namespace=namespace, name=name):
                try:
                    response = self._custom.patch_namespaced_custom_object(
                        GROUP, VERSION, namespace, "sandboxes", name, patch,
                        _content_type=_MERGE_PATCH, _preload_content=False)
                except ApiException as error:
                    if error.status == 409 and attempt < _CONFLICT_RETRIES - 1:
                        obj = self._fresh(name, namespace)
                        continue
                    raise
            new = decode(response)
            sandbox = self._remember(new)
            self._post_event(new, reason, message if isinstance(message, str) else message())
            return sandbox
        raise SandboxConflict(f"sandbox {name!r} kept changing; try again")  # pragma: no cover

    def _post_event(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        """Write a Router Event about ``obj``; the action succeeded, so a failure is only logged."""
        namespace = str(meta(obj).get("namespace", ""))
        event: Any = router_event(obj, reason, message, now=self._clock())
        try:
            with translate("create", "events", namespace=namespace):
                self._core.create_namespaced_event(
                    namespace, event, _preload_content=False)
        except Exception as error:
            self._warn(f"event/{reason}", "could not write the %s Event about %s/%s: %s", reason,
                       namespace, meta(obj).get("name"), error)

    def _remember(self, obj: dict[str, Any]) -> Sandbox:
        """Keep a write's answer for reads until the watch delivers that version (or newer)."""
        sandbox = self._convert_or_fail(obj)
        key = key_of(obj)
        version = _version_of(obj)
        with self._lock:
            written = self._written.get(key)
            if version > self._versions.get(key, -1) and (written is None
                                                          or version > written[0]):
                self._written[key] = (version, obj, sandbox, sandbox.uid)
        return sandbox

    def _known(self, key: Key) -> Sandbox | None:
        """A sandbox as we know it: our own newer write, else what the watch delivered."""
        with self._lock:
            written = self._written.get(key)
            if written is not None:
                return written[2]
            return self._sandboxes.get(key)

    def _raw(self, key: Key) -> dict[str, Any] | None:
        """A deep copy of the newest object we know (for a write built on it), or None."""
        with self._lock:
            written = self._written.get(key)
        if written is not None:
            return copy.deepcopy(written[1]) if written[1] is not None else None
        return self._informer.get(key)

    def _convert_or_fail(self, obj: Mapping[str, Any]) -> Sandbox:
        sandbox = self._convert(obj)
        if sandbox is None:
            raise ControlPlaneUnavailable("the API server's answer is unreadable")
        return sandbox

    # Templates

    def _lookup(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        if kind == CLUSTER_KIND:
            return self._cluster_templates.peek(("", name))
        return self._ns_templates.peek((namespace, name))

    def _template_kind(self, template: object, namespace: str) -> str:
        """Which kind of template ``template`` names for a sandbox in ``namespace``: a
        SandboxTemplate there wins over a ClusterSandboxTemplate of the same name."""
        if isinstance(template, str) and template:
            if self._ns_templates.peek((namespace, template)) is not None:
                return NAMESPACED_KIND
            if self._cluster_templates.peek(("", template)) is not None:
                return CLUSTER_KIND
        known = sorted(self.templates())
        raise InvalidRequest(f"unknown template {template!r}; known: {', '.join(known)}")

    def _resolved_template(self, obj: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The name of a sandbox's template and its merged spec ({} when it cannot be resolved)."""
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        ref = spec.get("templateRef")
        if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
            return "", {}
        name = ref["name"]
        kind = str(ref.get("kind") or NAMESPACED_KIND)
        namespace = str(meta(obj).get("namespace", ""))
        try:
            return name, resolve(kind, name, str(ref.get("namespace") or namespace),
                                 self._lookup)
        except InvalidRequest as error:
            self._warn(f"sandbox-template/{namespace}/{meta(obj).get('name')}",
                       "sandbox %s/%s: its template is not resolved (%s); pricing it from "
                       "its own requests", namespace, meta(obj).get("name"), error)
            return name, {}

    def _sandbox_template(self, obj: Mapping[str, Any]) -> Template:
        # What it runs with: an update's resources count only from its next start.
        spec = running_spec(obj)
        name, merged = self._resolved_template(obj)
        if not name:
            return effective_template("", {}, spec)
        return effective_template(name, merged, spec)

    def _on_template(self, kind: str, old: Mapping[str, Any] | None,
                     new: Mapping[str, Any] | None) -> None:
        with self._lock:
            self._templates_version += 1
        if self._informer.synced:  # re-price the sandboxes that use it (no transition)
            for obj in self._informer.objects():
                sandbox = self._convert(obj)
                if sandbox is not None:
                    with self._lock:
                        key = key_of(obj)
                        if key in self._sandboxes:
                            self._sandboxes[key] = sandbox

    # Watch handlers

    def _convert(self, obj: Mapping[str, Any]) -> Sandbox | None:
        """The contract's Sandbox for an object, or None (with a rate-limited warning)."""
        metadata = meta(obj)
        name, uid = metadata.get("name"), metadata.get("uid")
        if not isinstance(name, str) or not name or not isinstance(uid, str) or not uid:
            self._warn("malformed", "skipping a Sandbox object without name or uid: %r",
                       dict(metadata))
            return None
        phase = phase_of(obj)
        if phase is not None and not isinstance(phase, Phase):
            self._warn(f"phase/{phase}", "skipping sandbox %s/%s: unknown phase %r",
                       metadata.get("namespace"), name, phase)
            return None
        # No status yet: the controller has not reconciled it; upstream's phase "" is Creating.
        return sandbox_from(obj, self._sandbox_template(obj), phase or Phase.CREATING)

    def _emit(self, transition: Transition) -> None:
        try:
            self._sink(transition)
        except Exception:
            _log.exception("the transition sink failed on %s/%s -> %s",
                           transition.sandbox.namespace, transition.sandbox.name,
                           transition.phase)

    def _gone_now(self, key: Key, obj: Mapping[str, Any]) -> None:
        """A sandbox left (deleted, or replaced under its name): its Deleting transition."""
        with self._lock:
            sandbox = self._sandboxes.pop(key, None)
            self._versions.pop(key, None)
            written = self._written.get(key)
            if written is not None and written[3] == meta(obj).get("uid"):
                del self._written[key]  # what we wrote about it is history now
            if sandbox is None:
                return
            namespaces = self._by_name.get(key[1])
            if namespaces is not None:
                namespaces.discard(key[0])
                if not namespaces:
                    del self._by_name[key[1]]
            gone = replace(sandbox, phase=Phase.DELETING)
            self._gone[sandbox.uid] = gone
            while len(self._gone) > _TOMBSTONES:
                self._gone.popitem(last=False)
            last = self._last_ids.pop(sandbox.uid, None)
        transition = transition_for({**obj, "status": {}}, gone, self._clock())
        if last != transition.id:
            self._emit(replace(transition, reason="Deleted"))

    def _on_sandbox(self, kind: str, old: Mapping[str, Any] | None,
                    new: Mapping[str, Any] | None) -> None:
        if new is None:
            if old is not None:
                self._gone_now(key_of(old), old)
            return
        key = key_of(new)
        if old is not None and meta(old).get("uid") != meta(new).get("uid"):
            self._gone_now(key, old)  # deleted and re-created while we were not watching
        sandbox = self._convert(new)
        if sandbox is None:
            return
        version = _version_of(new)
        with self._lock:
            self._sandboxes[key] = sandbox
            self._versions[key] = version
            written = self._written.get(key)
            if written is not None and (written[0] <= version
                                        or written[3] != sandbox.uid):
                del self._written[key]  # the watch has caught up (or it is another object now)
            self._by_name.setdefault(key[1], set()).add(key[0])
            if phase_of(new) is None:
                return  # not reconciled yet: the controller's Creating comes next
            transition = transition_for(new, sandbox, self._clock())
            if self._last_ids.get(sandbox.uid) == transition.id:
                return
            self._last_ids[sandbox.uid] = transition.id
        self._emit(transition)

    def _on_event(self, kind: str, old: Mapping[str, Any] | None,
                  new: Mapping[str, Any] | None) -> None:
        if new is None:
            return  # Events expire; that is no news about the sandbox
        about = event_about(new)
        if about is None:
            return
        transition = transition_of_event(new, self._event_sandbox(*about, look_up=True),
                                         self._clock())
        if transition is not None:
            self._emit(transition)

    def _event_sandbox(self, namespace: str, name: str, uid: str, *, look_up: bool) -> Sandbox:
        """The sandbox an Event is about: as we know it, as it was when it went, or (on the
        Events thread only) read once from the API server when the Event outran its ADDED."""
        sandbox = self._known((namespace, name))
        if sandbox is not None and (not uid or sandbox.uid == uid):
            return sandbox
        with self._lock:
            tombstone = self._gone.get(uid) if uid else None
        if tombstone is not None:
            return tombstone
        if look_up:
            try:
                obj = self._fresh(name, namespace)
            except SandboxNotFound:
                obj = None
            except Exception:  # the API server is away: say what we know, look again later
                return stand_in(namespace, name, uid, None)
            if obj is not None and (not uid or meta(obj).get("uid") == uid):
                found = self._known((namespace, name))
                if found is not None:
                    return found
            if uid:  # gone for good: remember, so that its other Events need no lookup
                with self._lock:
                    self._gone[uid] = stand_in(namespace, name, uid, None)
                    while len(self._gone) > _TOMBSTONES:
                        self._gone.popitem(last=False)
        return stand_in(namespace, name, uid, None)

    def events(self, *, namespace: str | None = None, name: str | None = None,
               since: datetime | None = None, until: datetime | None = None,
               limit: int = 100) -> _Transitions:
        """The Kubernetes Events about Sandboxes that the cluster still holds, newest first,
        from memory: what ``/audit/events`` answers with when storage is off. The filters
        (namespace, sandbox name, ``since`` <= time < ``until``) apply before ``limit``."""
        self._require_synced(self._informer, self._events)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidRequest(f"limit must be an integer >= 0 (got {limit!r})")
        now = self._clock()
        found: _Transitions = []
        for obj in self._events.objects():
            about = event_about(obj)
            if about is None or (namespace is not None and about[0] != namespace) or (
                    name is not None and about[1] != name):
                continue
            transition = transition_of_event(obj, self._event_sandbox(*about, look_up=False),
                                             now)
            if transition is None or (since is not None and transition.time < since) or (
                    until is not None and transition.time >= until):
                continue
            found.append(transition)
        found.sort(key=lambda t: (t.time, t.id), reverse=True)
        return found[:limit]


def _version_of(obj: Mapping[str, Any]) -> int:
    try:
        return int(meta(obj).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def _require_phase(obj: Mapping[str, Any], action: str, *allowed: Phase) -> None:
    phase = phase_of(obj)
    if phase not in allowed:
        shown = "" if phase is None else (phase.value if isinstance(phase, Phase) else phase)
        raise SandboxConflict(f"cannot {action} sandbox in phase {shown}")


if TYPE_CHECKING:

    def _satisfies_the_contract(plane: KubernetesControlPlane) -> ControlPlane:
        return plane  # mypy checks KubernetesControlPlane against the ControlPlane protocol
