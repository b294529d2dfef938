"""The ``local`` control plane: sandboxes in the Router's own process, for evaluation only.

Each sandbox is an entry in memory plus a working directory ``root/<namespace>/<name>``.
Commands run with ``/bin/sh -c`` in that directory, as the Router's own user, on the
Router's own machine. There is no isolation of any kind::

    plane = LocalControlPlane(Path("/var/lib/agenttier"), DEFAULT_TEMPLATES, print)
    plane.create("sb-1", "default", "minimal", owner="alice", owner_email="a@example.com")
    plane.exec("sb-1", "default", "echo hello", timeout=10)   # once it is Running
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import selectors
import shutil
import signal
import stat
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from .base import (
    ControlPlane,
    ControlPlaneError,
    ControlPlaneUnavailable,
    ExecResult,
    InvalidRequest,
    Phase,
    Resources,
    Sandbox,
    SandboxChange,
    SandboxConflict,
    SandboxNotFound,
    ShareLevel,
    ShareLink,
    ShareLinkNotFound,
    ShareLinkRedeemed,
    Shares,
    Template,
    Transition,
    TransitionSink,
)
from .changes import (
    checked,
    format_go_duration,
    merge_map,
    merge_resources,
    requests_of,
    resources_of,
)
from .checks import check_command, check_identity, check_label, check_timeout
from .localfiles import LocalFiles
from .localstate import STATE_FILE, SandboxStore, Saved, SavedLink
from .output import OutputCapture, marker
from .sharelinks import (
    check_kind,
    check_new_link,
    is_token_hash,
    new_link_id,
    redeem_decision,
    same_hash,
)

__all__ = ["HEARTBEAT", "LocalControlPlane"]

_log = logging.getLogger(__name__)

_TIMEOUT_EXIT = 124
_PATH = "/usr/local/bin:/usr/bin:/bin"
_READ_SIZE = 1 << 16
_DRAIN_READS = 32  # x 64 KiB: more than a pipe can hold
_SETUP_THREADS = 4
_POLL = 0.05  # seconds between checks on the command when pidfd_open is unavailable
_IDLE_POLL = 0.5  # seconds between looks for sandboxes idle past their idleTimeout

HEARTBEAT = 5.0
"""Seconds between the plane's heartbeats: a killed Router's sandboxes are taken to have
stopped at the last one, so at most this much of their running time goes uncounted."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _frozen(mapping: Mapping[str, ShareLevel]) -> Mapping[str, ShareLevel]:
    return MappingProxyType(dict(mapping))


@dataclass(eq=False)
class _Exec:
    """One running command. Its group is killed, and it leaves ``execs``, before it is reaped."""

    proc: subprocess.Popen[bytes] | None = None
    killed: str = ""  # why the control plane killed it, if it did


@dataclass(eq=False)
class _Entry:
    sandbox: Sandbox
    workdir: Path
    execs: set[_Exec] = field(default_factory=set)
    pending: deque[Transition] = field(default_factory=deque)
    # Serialises delivery, so that each sandbox's transitions reach the sink in order.
    emit_lock: threading.RLock = field(default_factory=threading.RLock)
    # Serialises making and removing the working directory.
    dir_lock: threading.Lock = field(default_factory=threading.Lock)
    transitions: int = 0  # how many this sandbox has had: the sequence in each one's id
    running_since: datetime | None = None  # when its current running stretch began
    running_id: str = ""  # and the id of the transition that began it
    links: list[SavedLink] = field(default_factory=list)  # its share links, oldest first

    def transition(self, phase: Phase, reason: str, message: str, time: datetime) -> None:
        """Queue a transition of the sandbox as it is now, with the next stable id."""
        self.transitions += 1
        transition = Transition(self.sandbox, phase, reason, message, time,
                                id=f"{self.sandbox.uid}/{self.transitions}")
        if phase is Phase.RUNNING:
            self.running_since, self.running_id = time, transition.id
        else:
            self.running_since, self.running_id = None, ""
        self.pending.append(transition)

    def saved(self) -> Saved:
        """The entry as the plane's store keeps it."""
        return Saved(self.sandbox, self.transitions, self.running_since, self.running_id,
                     tuple(self.links))

    def set_links(self, links: list[SavedLink]) -> None:
        """Replace the share links, and the sandbox's view of them."""
        self.links = links
        shares = replace(self.sandbox.shares, links=tuple(x.link for x in links))
        self.sandbox = replace(self.sandbox, shares=shares)


class LocalControlPlane:
    """A control plane whose sandboxes are working directories on the Router's machine.

    **There is NO isolation.** Commands run as the Router's user, on the Router's
    machine, with the Router's network and file access; a sandbox's directory only
    sets where they start. Use it for evaluation only, never with untrusted users.

    What it does give: the real lifecycle (Creating -> Running <-> Stopped ->
    Deleting -> gone, and Error when setup fails), a private 0700 working directory
    per sandbox, a scrubbed environment (``PATH``, ``HOME``, ``LANG``, ``TERM`` only,
    so the Router's secrets never reach a command), timeouts that kill the command's
    whole process group, and output capped at 1 MiB per stream. A command's
    background processes do not outlive its exec. A new sandbox never sees a
    directory an earlier one left.

    Sandboxes outlive the process: each change is saved in ``root/sandboxes.db``.
    :meth:`close` stops the Running ones (reason ``RouterShutdown``); at the next
    start they come back Stopped, with their files. If the process was killed
    instead, the next start re-announces each running stretch under its original
    transition id (so it is stored once) and stops it at the last heartbeat
    (reason ``RouterStopped``), so its history and final cost snapshot are whole.
    A Creating sandbox is set up again; a Deleting one is deleted.

    Every transition reaches ``on_transition`` in order for each sandbox, and
    before the call that caused it returns (setup's come from a background
    thread, or from whichever caller is delivering that sandbox's transitions).
    The sink is never called with a lock held that other sandboxes need; an
    exception from it is logged and ignored.
    """

    def __init__(
        self,
        root: Path,
        templates: Mapping[str, Template],
        on_transition: TransitionSink,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._root = Path(root).absolute()
        self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_fd = _lock_root(self._root)
        self._templates: Mapping[str, Template] = MappingProxyType(dict(templates))
        self._sink = on_transition
        self._clock = clock
        self._lock = threading.Lock()
        self._sandboxes: dict[tuple[str, str], _Entry] = {}
        self._namespaces: dict[str, set[str]] = {}  # name -> the namespaces that hold one
        self._link_hashes: dict[str, tuple[str, str]] = {}  # token hash -> (namespace, name)
        self._closed = False
        self._setup = ThreadPoolExecutor(_SETUP_THREADS, thread_name_prefix="sandbox-setup")
        self._store = SandboxStore(self._root / STATE_FILE)
        self._beating = threading.Event()
        self._restore()
        self._heart = threading.Thread(target=self._beat, name="sandbox-heartbeat", daemon=True)
        self._heart.start()
        self._files = LocalFiles(self.workdir, self.get)

    def __repr__(self) -> str:
        return f"LocalControlPlane(root={str(self._root)!r}, sandboxes={len(self._sandboxes)})"

    def templates(self) -> Mapping[str, Template]:
        """The templates sandboxes may be created from, by name (read-only)."""
        return self._templates

    def create(
        self, name: str, namespace: str, template: str, owner: str, owner_email: str
    ) -> Sandbox:
        """Record a sandbox in phase Creating and return it; setup then moves it to Running.

        Raises :class:`InvalidRequest` for a bad name or namespace (RFC 1123 labels)
        or an unknown template, and :class:`SandboxConflict` if the name is taken.
        """
        check_label(name, "name")
        check_label(namespace, "namespace")
        for value, what in ((owner, "owner"), (owner_email, "owner_email")):
            if not isinstance(value, str):
                raise InvalidRequest(f"{what} must be a string")
        chosen = self._templates.get(template) if isinstance(template, str) else None
        if chosen is None:
            raise InvalidRequest(
                f"unknown template {template!r}; known: {', '.join(sorted(self._templates))}"
            )
        with self._lock:
            self._check_open()
            if (namespace, name) in self._sandboxes:
                raise SandboxConflict(f"{_describe(name, namespace)} already exists")
            now = self._clock()
            empty: Mapping[str, ShareLevel] = MappingProxyType({})
            sandbox = Sandbox(
                name=name, namespace=namespace, template=chosen, phase=Phase.CREATING,
                owner=owner, owner_email=owner_email, created_at=now, last_activity_at=now,
                shares=Shares(users=empty, groups=empty), uid=str(uuid.uuid4()),
            )
            entry = _Entry(sandbox=sandbox, workdir=self._root / namespace / name)
            self._sandboxes[namespace, name] = entry
            self._namespaces.setdefault(name, set()).add(namespace)
            entry.transition(Phase.CREATING, "Created", "", now)
            self._store.save(entry.saved())
            self._setup.submit(self._set_up, entry)
        self._flush(entry)
        return sandbox

    def get(self, name: str, namespace: str) -> Sandbox:
        """Return one sandbox, or raise :class:`SandboxNotFound`."""
        with self._lock:
            return self._entry(name, namespace).sandbox

    @property
    def files(self) -> LocalFiles:
        """The sandboxes' files: their working directories (``localfiles``)."""
        return self._files

    def workdir(self, name: str, namespace: str) -> Path:
        """The sandbox's working directory: what its ``/workspace`` is, for file transfers."""
        with self._lock:
            return self._entry(name, namespace).workdir

    def named(self, name: str) -> list[Sandbox]:
        """Every sandbox called ``name``, in any namespace, by namespace."""
        with self._lock:
            return [self._sandboxes[ns, name].sandbox
                    for ns in sorted(self._namespaces.get(name, ()))]

    def list(self, namespace: str | None = None) -> list[Sandbox]:
        """Every sandbox, or those of one namespace, oldest first."""
        with self._lock:
            return [
                entry.sandbox for (ns, _), entry in self._sandboxes.items()
                if namespace is None or ns == namespace
            ]

    def stop(self, name: str, namespace: str) -> Sandbox:
        """Running -> Stopped, killing any command still running in it."""
        with self._lock:
            self._check_open()
            entry = self._entry(name, namespace)
            _require(entry, Phase.RUNNING, "stop")
            _kill_execs(entry, "the sandbox was stopped")
            sandbox = self._move(entry, Phase.STOPPED, "Stopped")
        self._flush(entry)
        return sandbox

    def resume(self, name: str, namespace: str) -> Sandbox:
        """Stopped -> Running."""
        with self._lock:
            self._check_open()
            entry = self._entry(name, namespace)
            _require(entry, Phase.STOPPED, "resume")
            sandbox = self._move(entry, Phase.RUNNING, "Resumed")
        self._flush(entry)
        return sandbox

    def delete(self, name: str, namespace: str) -> None:
        """Any phase -> Deleting; kill its commands, remove its directory, then forget it.

        The last transition has phase Deleting and reason ``Deleted``. If the
        directory cannot be removed, the sandbox goes to Error (``DeleteFailed``),
        stays listed so that delete can be retried, and :class:`ControlPlaneError` is raised.
        """
        with self._lock:
            self._check_open()
            entry = self._entry(name, namespace)
            if entry.sandbox.phase is Phase.DELETING:
                raise SandboxConflict(f"{_describe(name, namespace)} is already Deleting")
            _kill_execs(entry, "the sandbox was deleted")
            self._move(entry, Phase.DELETING, "Deleting")
        self._flush(entry)
        self._finish_delete(entry)

    def _finish_delete(self, entry: _Entry) -> None:
        """Remove a Deleting sandbox's directory, then forget it (or move it to Error)."""
        name, namespace = entry.sandbox.name, entry.sandbox.namespace
        try:
            # Setup checks the phase under this lock, so no directory appears after this.
            with entry.dir_lock:
                _remove_tree(entry.workdir)
        except OSError as error:
            with self._lock:
                self._move(entry, Phase.ERROR, "DeleteFailed",
                           f"could not remove the working directory: {error.strerror or error}")
            self._flush(entry)
            raise ControlPlaneError(f"could not delete {_describe(name, namespace)}") from error
        with self._lock:
            del self._sandboxes[namespace, name]
            self._store.forget(namespace, name)
            for link in entry.links:
                self._link_hashes.pop(link.token_hash, None)
            spaces = self._namespaces[name]
            spaces.discard(namespace)
            if not spaces:
                del self._namespaces[name]
            entry.transition(Phase.DELETING, "Deleted", "", self._clock())
        self._flush(entry)

    def exec(self, name: str, namespace: str, command: str, timeout: float) -> ExecResult:
        """Run ``/bin/sh -c command`` in a Running sandbox's directory, for at most ``timeout`` s.

        On timeout the command's whole process group is killed and the result has
        exit code 124, ``timed_out=True`` and the output captured so far. A command
        killed by stop or delete ends with 128 + the signal number (137).
        """
        check_command(command)
        check_timeout(timeout)
        run = _Exec()
        with self._lock:
            self._check_open()
            entry = self._entry(name, namespace)
            _require(entry, Phase.RUNNING, "exec in")
            entry.execs.add(run)
            self._touch(entry)
        try:
            result = self._run(entry, run, command, float(timeout))
        finally:
            with self._lock:
                entry.execs.discard(run)
                self._touch(entry)
        return result

    def share(self, name: str, namespace: str, kind: Literal["user", "group"], identity: str,
              level: ShareLevel) -> Sandbox:
        """Grant (or change) a user's or group's share, and return the updated sandbox."""
        if kind not in ("user", "group"):
            raise InvalidRequest(f"kind must be 'user' or 'group' (got {kind!r})")
        if level not in ("viewer", "collaborator"):
            raise InvalidRequest(f"level must be 'viewer' or 'collaborator' (got {level!r})")
        check_identity(identity)
        with self._lock:
            self._check_open()
            entry = self._entry(name, namespace)
            _refuse_deleting(entry, "share")
            old = entry.sandbox.shares
            if kind == "user":
                shares = replace(old, users=_frozen({**old.users, identity: level}))
            else:
                shares = replace(old, groups=_frozen({**old.groups, identity: level}))
            entry.sandbox = replace(entry.sandbox, shares=shares)
            self._store.save(entry.saved())
            return entry.sandbox

    def unshare(self, name: str, namespace: str, identity: str,
                kind: Literal["user", "group"] | None = None) -> Sandbox:
        """Revoke the shares ``identity`` holds: only the user or group one with ``kind``,
        else both (none is fine)."""
        check_identity(identity)
        check_kind(kind)
        with self._lock:
            self._check_open()
            entry = self._entry(name, namespace)
            _refuse_deleting(entry, "unshare")
            old = entry.sandbox.shares
            shares = replace(
                old,
                users=old.users if kind == "group" else
                _frozen({k: v for k, v in old.users.items() if k != identity}),
                groups=old.groups if kind == "user" else
                _frozen({k: v for k, v in old.groups.items() if k != identity}),
            )
            entry.sandbox = replace(entry.sandbox, shares=shares)
            self._store.save(entry.saved())
            return entry.sandbox

    # Share links (issue 12): kept with the sandbox in the state file, under the plane's lock.

    def create_share_link(self, name: str, namespace: str, *, token_hash: str,
                          level: ShareLevel, expires_at: datetime | None,
                          max_uses: int) -> ShareLink:
        """Add a link (see :meth:`ControlPlane.create_share_link`) and save it at once."""
        check_new_link(token_hash, level, expires_at, max_uses)
        with self._lock:
            self._check_open()
            entry = self._entry(name, namespace)
            _refuse_deleting(entry, "add a share link to")
            if token_hash in self._link_hashes:  # 2^-256 by chance: a caller reusing a token
                raise SandboxConflict("a share link with this token already exists")
            taken = {x.link.id for x in entry.links}
            link_id = new_link_id()
            while link_id in taken:
                link_id = new_link_id()
            link = ShareLink(id=link_id, level=level, expires_at=expires_at, max_uses=max_uses)
            entry.set_links([*entry.links, SavedLink(link, token_hash)])
            self._link_hashes[token_hash] = (namespace, name)
            self._store.save(entry.saved())
            return link

    def revoke_share_link(self, name: str, namespace: str, link_id: str) -> Sandbox:
        """Remove one link; :class:`ShareLinkNotFound` when there is none by that id."""
        with self._lock:
            self._check_open()
            entry = self._entry(name, namespace)
            gone = [x for x in entry.links if x.link.id == link_id]
            if not gone:
                raise ShareLinkNotFound(f"no share link {link_id!r} on "
                                        f"{_describe(name, namespace)}")
            entry.set_links([x for x in entry.links if x.link.id != link_id])
            self._link_hashes.pop(gone[0].token_hash, None)
            self._store.save(entry.saved())
            return entry.sandbox

    def redeem_share_link(self, token_hash: str, identity: str) -> ShareLinkRedeemed:
        """Grant ``identity`` the link's level and count the use, in one step under the lock."""
        check_identity(identity)
        with self._lock:
            self._check_open()
            # The dict is keyed by the token's SHA-256: its lookup time says nothing about a
            # token; the stored hash is still compared in constant time.
            where = self._link_hashes.get(token_hash) if is_token_hash(token_hash) else None
            entry = self._sandboxes.get(where) if where is not None else None
            found = [i for i, x in enumerate(entry.links if entry else [])
                     if same_hash(x.token_hash, token_hash)]
            if entry is None or not found:
                raise ShareLinkNotFound("share link not found")
            _refuse_deleting(entry, "redeem a share link of")
            index = found[0]
            saved = entry.links[index]
            level = redeem_decision(entry.sandbox, saved.link, identity, self._clock())
            used = replace(saved.link, used_count=saved.link.used_count + 1)
            links = list(entry.links)
            links[index] = SavedLink(used, saved.token_hash)
            entry.set_links(links)
            old = entry.sandbox.shares
            entry.sandbox = replace(entry.sandbox, shares=replace(
                old, users=_frozen({**old.users, identity: level})))
            self._store.save(entry.saved())
            return ShareLinkRedeemed(entry.sandbox, used, level)

    # -- Updating a sandbox (PATCH /sandboxes/{id}) --

    def update(self, name: str, namespace: str, change: SandboxChange) -> Sandbox:
        """Apply an update, in any phase but Deleting, and save it.

        ``idle_timeout`` applies at once (the heartbeat thread stops a Running
        sandbox idle that long, reason ``IdleTimeout``); labels and annotations
        merge at once (None removes a key); ``resources`` merge over what the
        sandbox requests and apply at its next start (a resume), cost rate
        included. Nothing enforces limits here: this plane has no isolation.
        """
        change = checked(change)
        with self._lock:
            self._check_open()
            entry = self._entry(name, namespace)
            _refuse_deleting(entry, "update")
            entry.sandbox = _changed(entry.sandbox, change)
            self._store.save(entry.saved())
            return entry.sandbox

    def _stop_idle(self) -> None:
        """Stop every Running sandbox with no command running and no activity for its
        ``idle_timeout``, counting from its last activity or its start, whichever is later."""
        stopped: list[_Entry] = []
        with self._lock:
            if self._closed:
                return
            watched = [e for e in self._sandboxes.values() if e.sandbox.phase is Phase.RUNNING
                       and e.sandbox.idle_timeout is not None and not e.execs]
            if not watched:
                return  # (and the clock is not read: a test's stepping clock stays put)
            now = self._clock()
            for entry in watched:
                sandbox = entry.sandbox
                limit = sandbox.idle_timeout
                assert limit is not None
                since = max(sandbox.last_activity_at, entry.running_since or now)
                if (now - since).total_seconds() >= limit:
                    self._move(entry, Phase.STOPPED, "IdleTimeout",
                               f"Idle for {format_go_duration(limit)}")
                    stopped.append(entry)
        for entry in stopped:
            self._flush(entry)

    # --

    def problem(self) -> ControlPlaneUnavailable | None:
        """Always None: a local plane is there as long as its process is."""
        return None

    def close(self) -> None:
        """Kill every command, stop every Running sandbox, and stop; every action then refuses.

        The sandboxes stay saved and their directories on disk, for the next start.
        Closing twice is harmless.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            entries = list(self._sandboxes.values())
            for entry in entries:
                _kill_execs(entry, "the control plane was closed")
                if entry.sandbox.phase is Phase.RUNNING:
                    self._move(entry, Phase.STOPPED, "RouterShutdown", "the Router shut down")
        self._setup.shutdown(wait=True, cancel_futures=True)
        for entry in entries:
            self._flush(entry)
        self._beating.set()
        self._heart.join()
        self._store.beat(self._clock())
        self._store.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the data directory to the next Router
            self._lock_fd = -1

    def _restore(self) -> None:
        """Bring back the saved sandboxes, and end what a killed process left running."""
        stopped_at = self._store.heartbeat()
        deleting = []
        for saved in self._store.load():
            sandbox = saved.sandbox
            entry = _Entry(sandbox=sandbox, workdir=self._root / sandbox.namespace / sandbox.name,
                           transitions=saved.transitions, running_since=saved.running_since,
                           running_id=saved.running_id, links=list(saved.links))
            self._sandboxes[sandbox.namespace, sandbox.name] = entry
            for link in saved.links:
                self._link_hashes[link.token_hash] = (sandbox.namespace, sandbox.name)
            self._namespaces.setdefault(sandbox.name, set()).add(sandbox.namespace)
            if sandbox.phase is Phase.RUNNING and saved.running_since is not None:
                # Announce the stretch again, under its own id (the store keeps it once),
                # so that the cost sampler counts it, then end it when the process died.
                entry.pending.append(Transition(sandbox, Phase.RUNNING, "Started", "",
                                                saved.running_since, id=saved.running_id))
                end = max(stopped_at or saved.running_since, saved.running_since)
                self._move(entry, Phase.STOPPED, "RouterStopped",
                           "the Router stopped while the sandbox ran", at=end)
            elif sandbox.phase is Phase.CREATING:
                self._setup.submit(self._set_up, entry)
            elif sandbox.phase is Phase.DELETING:
                deleting.append(entry)
        for entry in list(self._sandboxes.values()):
            self._flush(entry)
        for entry in deleting:
            with contextlib.suppress(ControlPlaneError):  # logged as an Error transition
                self._finish_delete(entry)

    def _beat(self) -> None:
        """Background: say the process is alive, every :data:`HEARTBEAT` seconds, and stop
        the sandboxes idle past their ``idleTimeout`` (looking twice a second)."""
        last_beat: float | None = None
        while True:
            if last_beat is None or time.monotonic() - last_beat >= HEARTBEAT:
                last_beat = time.monotonic()
                try:
                    self._store.beat(self._clock())
                except Exception:
                    _log.exception("could not write the control plane's heartbeat")
            try:
                self._stop_idle()
            except Exception:
                _log.exception("could not stop the idle sandboxes")
            if self._beating.wait(min(HEARTBEAT, _IDLE_POLL)):
                return

    # Lifecycle internals. Methods named ``_move``/``_touch``/``_entry`` need ``self._lock``.

    def _check_open(self) -> None:
        if self._closed:
            raise ControlPlaneError("the control plane is closed")

    def _entry(self, name: str, namespace: str) -> _Entry:
        entry = self._sandboxes.get((namespace, name))
        if entry is None:
            raise SandboxNotFound(f"no {_describe(name, namespace)}")
        return entry

    def _move(self, entry: _Entry, phase: Phase, reason: str, message: str = "",
              at: datetime | None = None) -> Sandbox:
        entry.sandbox = replace(entry.sandbox, phase=phase, message=message)
        if phase is Phase.RUNNING:
            entry.sandbox = _started(entry.sandbox)
        entry.transition(phase, reason, message, self._clock() if at is None else at)
        self._store.save(entry.saved())
        return entry.sandbox

    def _touch(self, entry: _Entry) -> None:
        entry.sandbox = replace(entry.sandbox, last_activity_at=self._clock())
        if (entry.sandbox.namespace, entry.sandbox.name) in self._sandboxes:
            self._store.save(entry.saved())

    def _flush(self, entry: _Entry) -> None:
        """Deliver the entry's pending transitions, in order, outside ``self._lock``."""
        with entry.emit_lock:
            while True:
                with self._lock:
                    if not entry.pending:
                        return
                    transition = entry.pending.popleft()
                try:
                    self._sink(transition)
                except Exception:
                    _log.exception("the transition sink failed on %s -> %s (%s)",
                                   _describe(entry.sandbox.name, entry.sandbox.namespace),
                                   transition.phase, transition.reason)

    def _set_up(self, entry: _Entry) -> None:
        """Background: make the working directory, then Creating -> Running (or Error)."""
        try:
            with entry.dir_lock:
                with self._lock:
                    if entry.sandbox.phase is not Phase.CREATING:
                        return  # deleted before setup ran
                _make_workdir(entry.workdir)
                with self._lock:
                    if entry.sandbox.phase is Phase.CREATING and not self._closed:
                        self._move(entry, Phase.RUNNING, "Started")
        except Exception as error:
            _log.exception("setting up %s failed",
                           _describe(entry.sandbox.name, entry.sandbox.namespace))
            detail = error.strerror if isinstance(error, OSError) and error.strerror else error
            with self._lock:
                if entry.sandbox.phase is Phase.CREATING:
                    self._move(entry, Phase.ERROR, "SetupFailed",
                               f"could not create the working directory: {detail}")
        self._flush(entry)

    def _run(self, entry: _Entry, run: _Exec, command: str, timeout: float) -> ExecResult:
        """Start the command, collect its output, and end its process group."""
        with self._lock:
            if run.killed:  # stopped or deleted since exec was accepted: start nothing
                return ExecResult("", marker(f"killed: {run.killed}"), 128 + signal.SIGKILL)
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", command], cwd=entry.workdir, env=_environment(entry.workdir),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True, close_fds=True, umask=0o077,
            )
        except OSError as error:
            raise ControlPlaneError(
                f"could not start the command in {entry.sandbox.name!r}: {error.strerror}"
            ) from error
        with self._lock:
            run.proc = proc
            if run.killed:  # stopped or deleted while the process was starting
                _kill_group(proc)

        def end_group() -> None:
            # Kill the group while the leader is still unreaped (so its id cannot have been
            # reused), and leave ``execs`` so that nobody else signals it after the reap.
            with self._lock:
                if run in entry.execs:
                    _kill_group(proc)
                    entry.execs.discard(run)

        with proc:
            try:
                out, err, timed_out = _collect(proc, timeout, end_group)
            finally:
                end_group()  # in case collecting failed (a no-op if it already ran)
                proc.wait()
        stdout = out.text("stdout")
        stderr = err.text("stderr")
        if timed_out:
            return ExecResult(stdout, stderr + marker(f"timed out after {timeout:g} s"),
                              _TIMEOUT_EXIT, timed_out=True)
        code = proc.returncode
        if run.killed:
            stderr += marker(f"killed: {run.killed}")
        return ExecResult(stdout, stderr, 128 - code if code < 0 else code)



def _collect(
    proc: subprocess.Popen[bytes], timeout: float, end_group: Callable[[], None]
) -> tuple[OutputCapture, OutputCapture, bool]:
    """Read stdout and stderr until the leader exits or ``timeout`` passes; then end the group.

    Waiting on the leader rather than on end-of-file means that a background
    process holding the pipes (``sleep 30 &``) cannot keep the exec waiting.
    """
    assert proc.stdout is not None and proc.stderr is not None
    captures = {proc.stdout.fileno(): OutputCapture(), proc.stderr.fileno(): OutputCapture()}
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        pidfd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: poll instead
        pidfd = None
    with selectors.DefaultSelector() as selector:
        for fd in captures:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        if pidfd is not None:
            selector.register(pidfd, selectors.EVENT_READ)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                wait = remaining if pidfd is not None else min(remaining, _POLL)
                ready = [key.fd for key, _ in selector.select(wait)]
                for fd in ready:
                    if fd in captures and not _read(fd, captures[fd]):
                        selector.unregister(fd)
                # Without pidfd, poll() reaps the leader: a small window for id reuse.
                if pidfd in ready or (pidfd is None and proc.poll() is not None):
                    break
            end_group()
            # The group is dead: take what it wrote, without waiting on escaped processes
            # (bounded, as one that escaped may write for ever; a pipe holds at most 1 MiB).
            for fd, capture in captures.items():
                for _ in range(_DRAIN_READS):
                    if not _read(fd, capture):
                        break
        finally:
            if pidfd is not None:
                os.close(pidfd)
    return captures[proc.stdout.fileno()], captures[proc.stderr.fileno()], timed_out


def _read(fd: int, capture: OutputCapture) -> bool:
    """Read what is available; False at end of file or when nothing is ready."""
    try:
        chunk = os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return False
    except OSError:  # e.g. EBADF once end of file was seen
        return False
    capture.add(chunk)
    return bool(chunk)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(proc.pid, signal.SIGKILL)


def _kill_execs(entry: _Entry, why: str) -> None:
    """Kill every command running in the sandbox (needs the control plane's lock)."""
    for run in entry.execs:
        run.killed = run.killed or why
        if run.proc is not None:
            _kill_group(run.proc)


def _environment(workdir: Path) -> dict[str, str]:
    # Nothing is inherited, so the Router's own variables (and secrets) never reach a command.
    return {"PATH": _PATH, "HOME": str(workdir), "LANG": "C.UTF-8", "TERM": "dumb"}


def _lock_root(root: Path) -> int:
    """Hold ``root`` for this process, as the spool holds its directory (``flock``).

    A second Router on the same directory would take every sandbox directory in
    it for a forgotten one and wipe it (issue 9, item 13); it stops here instead.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)  # the directory itself: no file in it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ControlPlaneUnavailable(
            f"data directory {root} is in use by another Router (it holds a lock on it); "
            "stop that one, or give this one another --data-dir",
            retry_after=0,
        ) from None
    return fd


def _make_workdir(workdir: Path) -> None:
    workdir.parent.mkdir(mode=0o700, exist_ok=True)
    # A directory left by an earlier Router process belongs to a forgotten sandbox.
    _remove_tree(workdir)
    workdir.mkdir(mode=0o700)


def _remove_tree(path: Path) -> None:
    if path.is_symlink():
        path.unlink()
        return
    if not path.exists():
        return
    try:
        shutil.rmtree(path)
    except OSError:
        # Once more: a command may have left directories the owner cannot list or write
        # (chmod 000), or a process killed a moment ago may have just added a file.
        _open_up(path)
        shutil.rmtree(path)


def _open_up(root: Path) -> None:
    """Give the owner rwx on every directory under ``root``, without following links."""
    stack = [str(root)]
    while stack:
        directory = stack.pop()
        os.chmod(directory, stat.S_IRWXU)
        with os.scandir(directory) as entries:
            stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))


def _changed(sandbox: Sandbox, change: SandboxChange) -> Sandbox:
    """``sandbox`` with a checked ``change`` applied (see :meth:`LocalControlPlane.update`)."""
    fields: dict[str, Any] = {}
    if change.idle_timeout is not None:
        fields["idle_timeout"] = float(change.idle_timeout)
    if change.labels is not None:
        fields["labels"] = MappingProxyType(merge_map(sandbox.labels, change.labels, "labels"))
    if change.annotations is not None:
        fields["annotations"] = MappingProxyType(
            merge_map(sandbox.annotations, change.annotations, "annotations"))
    if change.resources is not None:
        template = sandbox.template
        current = sandbox.resources or resources_of(template.cpu, template.memory_gib)
        wanted = merge_resources(current, change.resources)
        wanted = Resources(requests=MappingProxyType(dict(wanted.requests)),
                           limits=MappingProxyType(dict(wanted.limits)))
        fields["resources"] = wanted
        fields["restart_pending"] = (requests_of(wanted, template.cpu, template.memory_gib)
                                     != (template.cpu, template.memory_gib))
    return replace(sandbox, **fields)


def _started(sandbox: Sandbox) -> Sandbox:
    """``sandbox`` as it starts a run: with the resources it requests, and so their cost."""
    if sandbox.resources is None:
        return sandbox
    template = sandbox.template
    cpu, memory = requests_of(sandbox.resources, template.cpu, template.memory_gib)
    return replace(sandbox, template=replace(template, cpu=cpu, memory_gib=memory),
                   restart_pending=False)


def _describe(name: str, namespace: str) -> str:
    return f"sandbox {name!r} in namespace {namespace!r}"


def _require(entry: _Entry, phase: Phase, action: str) -> None:
    current = entry.sandbox.phase
    if current is not phase:
        raise SandboxConflict(
            f"cannot {action} {_describe(entry.sandbox.name, entry.sandbox.namespace)}: "
            f"it is {current.value}, not {phase.value}"
        )


def _refuse_deleting(entry: _Entry, action: str) -> None:
    if entry.sandbox.phase is Phase.DELETING:
        raise SandboxConflict(
            f"cannot {action} {_describe(entry.sandbox.name, entry.sandbox.namespace)}: "
            "it is Deleting"
        )


if TYPE_CHECKING:

    def _satisfies_the_contract(plane: LocalControlPlane) -> ControlPlane:
        return plane  # mypy checks LocalControlPlane against the ControlPlane protocol
