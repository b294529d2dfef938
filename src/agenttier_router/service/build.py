"""Building the Router's parts from its configuration, and stopping them in order.

::

    services = build_services(RouterConfig(storage_url="sqlite:///agenttier.db"))
    services.start()          # background jobs: the cost sampler
    ...                       # the API drives services.control_plane, records, reads
    services.close()          # stop producing, drain the recorder, close the store

The wiring follows the data flow: the control plane emits transitions to
:meth:`Recording.on_transition`, which records them and shows them to the cost
sampler; the sampler's snapshots and the API's audit events go to the recorder;
reads go to the backend. Nothing here knows HTTP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from agenttier_router.apikeys import MintedKeyStore, open_key_store
from agenttier_router.controlplane import ControlPlane
from agenttier_router.controlplane.open import open_control_plane
from agenttier_router.costs import CostSampler
from agenttier_router.storage import (
    Backend,
    NoopBackend,
    Recorder,
    RecorderConfig,
    StorageError,
    UnavailableBackend,
    mask_url,
    open_backend,
)
from agenttier_router.storage.maintenance import Maintenance
from agenttier_router.storage.sql.base import SQLBackend

from .config import RouterConfig
from .recording import Recording

if TYPE_CHECKING:
    from agenttier_router.api.auth import KeyStore

__all__ = ["Services", "StorageInfo", "build_services"]

log = logging.getLogger("agenttier_router.service")


@dataclass(frozen=True, slots=True)
class StorageInfo:
    """How storage was configured: on or off, its masked URL, and why it could not open."""

    enabled: bool
    url: str = ""
    open_error: str = ""


def _open_storage(url: str | None) -> tuple[Backend, StorageInfo]:
    """Open the store; a URL that cannot be opened is logged once and spooled around."""
    if not url:
        log.info("storage: off (no URL); Kubernetes stays the only source of truth")
        return NoopBackend(), StorageInfo(enabled=False)
    shown = mask_url(url)
    try:
        backend = open_backend(url)
    except StorageError as error:
        log.error("storage: cannot open %s: %s; the Router serves on, and records are "
                  "spooled until it is started with a URL that works", shown, error)
        return UnavailableBackend(str(error)), StorageInfo(True, shown, str(error))
    log.info("storage: %s (connects on first use; if the database is down, records are "
             "spooled and written once it answers)", shown)
    return backend, StorageInfo(True, shown)


class Services:
    """The Router's parts, built once by :func:`build_services` and shared by the API.

    ``start`` starts the background jobs; ``close`` stops everything in order:
    the control plane (a local one stops its sandboxes, so their last cost
    snapshots are emitted), the sampler, the recorder's drain into the store,
    then the store.
    """

    def __init__(
        self,
        *,
        config: RouterConfig,
        registry: CollectorRegistry,
        backend: Backend,
        storage: StorageInfo,
        recorder: Recorder,
        sampler: CostSampler,
        recording: Recording,
        control_plane: ControlPlane,
        maintenance: Maintenance | None = None,
        api_keys: MintedKeyStore | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.backend = backend
        self.storage = storage
        self.recorder = recorder
        self.sampler = sampler
        self.recording = recording
        self.control_plane = control_plane
        self.maintenance = maintenance
        """Cost rollups and retention purges, on SQL storage; None otherwise."""
        self.api_keys = api_keys
        """Minted API keys, kept where the control plane keeps sandboxes; None: none."""

    def __repr__(self) -> str:
        return (f"Services(storage={self.storage.url or 'off'!r}, "
                f"control_plane={self.control_plane!r})")

    @property
    def keys(self) -> KeyStore | None:
        """The API keys, when the Router checks keys."""
        return self.config.keys

    @property
    def dev_auth(self) -> bool:
        """Whether every request is a local admin (evaluation only)."""
        return self.config.dev_auth

    def start(self) -> None:
        """Start the background jobs: the cost sampler, and storage maintenance."""
        self.sampler.start()
        if self.maintenance is not None:
            self.maintenance.start()

    def close(self) -> None:
        """Stop producing, drain the recorder into the store, and close it."""
        # A local plane stops its sandboxes as it closes: their transitions reach the
        # sampler, which emits their last snapshots; then the sampler stops.
        self.control_plane.close()
        if self.api_keys is not None:
            self.api_keys.close()  # the Secrets' watch
        self.sampler.close()
        self.recording.close()  # folded anonymous denials
        if self.maintenance is not None:
            self.maintenance.close()  # a purge stops after its current batch
        # A store that could not be opened cannot become writable in this process:
        # spool at once for the next start, rather than wait close_timeout to drain.
        if not self.recorder.close(0 if self.storage.open_error else None):
            log.warning("storage: records still unwritten at shutdown are kept in the "
                        "spool and replayed at the next start (if a spool is configured)")
        self.backend.close()


def _inside(path: Path | None, directory: Path) -> bool:
    return path is not None and path.absolute().is_relative_to(directory.absolute())


def build_services(config: RouterConfig) -> Services:
    """Build storage, recorder, cost sampler, recording, control plane and key store.

    Raises the control plane's :class:`~agenttier_router.controlplane.InvalidRequest`
    for a control-plane URL it cannot use, and ``ValueError`` for a store of
    minted keys that cannot be read; storage never stops it (see :class:`StorageInfo`).
    """
    registry = CollectorRegistry()
    if config.control_plane_url is None or _inside(config.spool_dir, config.data_dir):
        # Made here, 0700, before the spool in it is: ``mkdir(parents=True)`` makes the
        # parents it needs 0755 (issue 9, item 14), and the data dir holds sandboxes' files.
        config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    backend, storage = _open_storage(config.storage_url)
    recorder_config = config.recorder or RecorderConfig()
    if storage.enabled:
        recorder_config = replace(recorder_config, spool_dir=config.spool_dir)
    recorder = Recorder(backend, config=recorder_config, registry=registry)
    sampler = CostSampler(recorder.record, config.prices, interval=config.cost_interval)
    recording = Recording(recorder.record, sampler.observe,
                          anonymous_interval=config.anonymous_interval)
    url = config.control_plane_url or f"local://{config.data_dir.absolute()}"
    try:
        plane = open_control_plane(url, recording.on_transition, templates=config.templates)
    except BaseException:
        recorder.close(0)
        backend.close()
        raise
    try:  # minted keys live where the sandboxes do: a file beside them, or Secrets
        api_keys = open_key_store(url) if config.minted_keys else None
    except BaseException:
        plane.close()
        recorder.close(0)
        backend.close()
        raise
    maintenance = None
    if isinstance(backend, SQLBackend) and config.maintenance_interval is not None:
        maintenance = Maintenance(backend, config.retention, interval=config.maintenance_interval,
                                  batch=config.purge_batch, pause=config.purge_pause,
                                  audit=recorder.record)
    return Services(config=config, registry=registry, backend=backend, storage=storage,
                    recorder=recorder, sampler=sampler, recording=recording,
                    control_plane=plane, maintenance=maintenance, api_keys=api_keys)
