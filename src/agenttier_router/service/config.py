"""What the Router is configured with: one value object, built at the edge.

The ``serve`` and ``watch`` commands read flags and the environment and build a
:class:`RouterConfig`; nothing below them reads the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agenttier_router.controlplane import Template
from agenttier_router.controlplane.templates import DEFAULT_TEMPLATES
from agenttier_router.costs import PriceTable
from agenttier_router.storage import RecorderConfig
from agenttier_router.storage.retention import RetentionPolicy

if TYPE_CHECKING:  # the API's key store and OIDC verifier; held here, used only by the API
    from agenttier_router.api.auth import KeyStore
    from agenttier_router.api.oidc import OidcVerifier

__all__ = ["RouterConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterConfig:
    """Everything the Router is configured with; built by the ``serve`` command.

    ::

        RouterConfig(storage_url="sqlite:///agenttier.db", dev_auth=True)
    """

    storage_url: str | None = None
    """Storage URL; None or "" runs the no-op backend (storage off)."""
    control_plane_url: str | None = None
    """Where sandboxes live: ``local:///dir`` or ``kubernetes://``; None: local, in ``data_dir``."""
    keys: KeyStore | None = None
    """The keys file's keys (``--api-key-file``); None: none."""
    minted_keys: bool = True
    """Whether callers may mint API keys (kept beside the sandboxes); off for the headless
    recorder, which serves no API."""
    oidc: OidcVerifier | None = None
    """Checks ``Authorization: Bearer`` JWTs when no ``X-API-Key`` is sent; None: keys only."""
    dev_auth: bool = False
    data_dir: Path = Path("agenttier-data")
    """Where the local control plane keeps sandbox working directories."""
    spool_dir: Path | None = None
    """The recorder's spool; None runs without one (records the database refuses are dropped)."""
    templates: Mapping[str, Template] = field(default_factory=lambda: dict(DEFAULT_TEMPLATES))
    prices: PriceTable = field(default_factory=PriceTable)
    cost_interval: float = 60.0
    recorder: RecorderConfig | None = None
    """Recorder tuning; its ``spool_dir`` is replaced by ``spool_dir`` above."""
    max_execs_per_user: int = 8
    """Execs one caller may run at once; one more is refused (429, recorded)."""
    max_execs: int = 64
    """Execs the Router runs at once, for all callers; one more is refused (429, recorded)."""
    max_body_bytes: int = 1 << 20
    """The largest request body accepted; a larger one is refused (413) before it is read."""
    anonymous_interval: float = 60.0
    """Seconds over which repeated anonymous denials from one address and reason are folded
    into one record with a count."""
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    """How long each kind of history is kept; the default keeps everything forever."""
    maintenance_interval: float | None = 300.0
    """Seconds between rounds of cost rollups and retention purges (SQL storage only);
    None runs no maintenance (rollups then come from ``db rollup``)."""
    purge_batch: int = 5000
    """Rows a retention purge deletes per transaction."""
    purge_pause: float = 0.0
    """After each purge batch, wait this many times as long as it took (0: never), so the
    recorder's writes get the database's share back (BENCHMARKS.md, "Purge of 10M rows")."""
