"""``agenttier-router watch``: record a cluster's history beside any Router, serving no API.

For clusters that keep the Go Router (or run ours too): it watches the
Sandboxes and their Events and records every transition, Event and cost
snapshot. Its ids are the ones a Router computes, so it may run beside a
Router, or several of itself, and every record is still stored once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .startup import check_port, storage_url_from

__all__ = ["watch"]


@click.command()
@click.option("--control-plane", "control_plane_url", metavar="URL", default="kubernetes://",
              show_default=True, envvar="AGENTTIER_CONTROL_PLANE",
              help="The cluster to watch: kubernetes://[?context=NAME&namespace=NS]. "
              "[env: AGENTTIER_CONTROL_PLANE]")
@click.option("--storage", "storage_url", metavar="URL",
              help="Storage URL (sqlite:///file.db, postgresql://…, mysql://…). "
              "Default: --storage-file, else $STORAGE_DSN, else $STORAGE_SQLITE_PATH; one is "
              "required. A password here shows in 'ps': prefer --storage-file or $STORAGE_DSN.")
@click.option("--storage-file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="STORAGE_DSN_FILE", metavar="FILE",
              help="A file holding the storage URL (e.g. a mounted Secret); keeps its "
              "password off the command line. [env: STORAGE_DSN_FILE]")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind /healthz, /readyz and /metrics.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535),
              help="Port to bind.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("agenttier-data"), show_default=True, envvar="AGENTTIER_DATA_DIR",
              help="Where the spool lives by default.")
@click.option("--spool-dir", type=click.Path(file_okay=False, path_type=Path),
              envvar="AGENTTIER_SPOOL_DIR",
              help="The recorder's durable spool. Default: DATA_DIR/spool.")
@click.option("--cost-interval", type=click.FloatRange(min=1.0), default=60.0,
              show_default=True,
              help="Seconds per cost bucket; keep the Routers' value, so that ids match.")
@click.option("--cpu-price", type=click.FloatRange(min=0.0), default=0.031611,
              show_default=True, help="USD per vCPU-hour (OpenCost's default).")
@click.option("--memory-price", type=click.FloatRange(min=0.0), default=0.004237,
              show_default=True, help="USD per GiB-hour (OpenCost's default).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True, help="Logging level.")
def watch(
    control_plane_url: str, storage_url: str | None, storage_file: Path | None, host: str,
    port: int, data_dir: Path, spool_dir: Path | None, cost_interval: float, cpu_price: float,
    memory_price: float, log_level: str,
) -> None:
    """Record every Sandbox Event, phase transition and cost snapshot of a cluster.

    A headless recorder for clusters that keep the Go Router: it serves only
    /healthz, /readyz and /metrics. It may run beside a Router or another
    watcher: records carry the same ids, so each is stored once.
    """
    import uvicorn

    from agenttier_router.api import create_app
    from agenttier_router.controlplane import ControlPlaneError
    from agenttier_router.costs import PriceTable
    from agenttier_router.service import RouterConfig, build_services

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not control_plane_url.startswith("kubernetes:"):
        raise click.BadParameter("watch records a cluster: use kubernetes://[?context=&namespace=]",
                                 param_hint="'--control-plane'")
    url = storage_url_from(storage_url, storage_file)
    if not url:
        raise click.UsageError("watch needs somewhere to record: pass --storage URL "
                               "(or set STORAGE_DSN)")
    check_port(host, port)
    config = RouterConfig(
        storage_url=url, control_plane_url=control_plane_url, data_dir=data_dir,
        spool_dir=spool_dir or data_dir / "spool",
        prices=PriceTable(cpu_price, memory_price), cost_interval=cost_interval,
        minted_keys=False,  # no API: no keys to check (and no RBAC on Secrets)
    )
    try:
        services = build_services(config)
    except ControlPlaneError as error:
        raise click.BadParameter(str(error), param_hint="'--control-plane'") from None
    uvicorn.run(create_app(services, api=False), host=host, port=port, log_level=log_level,
                timeout_graceful_shutdown=20)
