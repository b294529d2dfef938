"""``agenttier-router serve``: run the Router's HTTP API on uvicorn.

The flags (and, for Helm, the environment variables beside them) are read
here into one :class:`~agenttier_router.service.RouterConfig`, from which
:func:`~agenttier_router.service.build_services` builds the parts that
:func:`agenttier_router.api.create_app` serves; nothing else reads them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click
from click.core import ParameterSource

from .db import retention_options, retention_policy
from .startup import check_port, storage_url_from

__all__ = ["serve"]

log = logging.getLogger("agenttier_router.serve")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535),
              help="Port to bind.")
@click.option("--storage", "storage_url", metavar="URL",
              help="Storage URL (sqlite:///file.db, postgresql://…, mysql://…). "
              "Default: --storage-file, else $STORAGE_DSN, else $STORAGE_SQLITE_PATH; with "
              "none, storage is off. A password here shows in 'ps' (a warning says so): "
              "prefer --storage-file or $STORAGE_DSN.")
@click.option("--storage-file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="STORAGE_DSN_FILE", metavar="FILE",
              help="A file holding the storage URL (e.g. a mounted Secret); keeps its "
              "password off the command line. [env: STORAGE_DSN_FILE]")
@click.option("--control-plane", "control_plane_url", metavar="URL",
              envvar="AGENTTIER_CONTROL_PLANE",
              help="Where sandboxes live: local:///path/to/dir (evaluation; default: "
              "local in --data-dir) or kubernetes://[?context=NAME&namespace=NS]. "
              "[env: AGENTTIER_CONTROL_PLANE]")
@click.option("--api-keys", "api_keys", type=click.Path(dir_okay=False, path_type=Path),
              envvar="AGENTTIER_API_KEYS", metavar="FILE",
              help="YAML or JSON list of {key, subject, email, groups}; not with --dev-auth. "
              "[env: AGENTTIER_API_KEYS]")
@click.option("--admin-group", default="agenttier-admins", show_default=True,
              envvar="AGENTTIER_ADMIN_GROUP", help="Members of this group are admins.")
@click.option("--oidc-issuer", metavar="URL", envvar="AGENTTIER_OIDC_ISSUER",
              help="Accept Authorization: Bearer JWTs from this OIDC issuer (https; http only "
              "on loopback), checked against its JWKS. [env: AGENTTIER_OIDC_ISSUER]")
@click.option("--oidc-audience", metavar="AUD", envvar="AGENTTIER_OIDC_AUDIENCE",
              help="The audience (aud) tokens must be for; required with --oidc-issuer. "
              "[env: AGENTTIER_OIDC_AUDIENCE]")
@click.option("--oidc-groups-claim", default="groups", show_default=True,
              envvar="AGENTTIER_OIDC_GROUPS_CLAIM", help="The claim holding the caller's groups.")
@click.option("--oidc-email-claim", default=None, envvar="AGENTTIER_OIDC_EMAIL_CLAIM",
              help="The claim holding the caller's email (default: email).")
@click.option("--dev-auth", is_flag=True,
              help="Treat every request as a local admin. For evaluation only.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("agenttier-data"), show_default=True, envvar="AGENTTIER_DATA_DIR",
              help="Where local sandboxes keep their working directories.")
@click.option("--spool-dir", type=click.Path(file_okay=False, path_type=Path),
              envvar="AGENTTIER_SPOOL_DIR",
              help="The recorder's durable spool, for records the database cannot take yet. "
              "Default: DATA_DIR/spool when storage is on.")
@click.option("--templates", "templates_file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="AGENTTIER_TEMPLATES", metavar="FILE",
              help="YAML or JSON templates that override or add to the defaults.")
@click.option("--cost-interval", type=click.FloatRange(min=1.0), default=60.0,
              show_default=True, help="Seconds between cost snapshots of running sandboxes.")
@click.option("--cpu-price", type=click.FloatRange(min=0.0), default=0.031611,
              show_default=True, help="USD per vCPU-hour (OpenCost's default).")
@click.option("--memory-price", type=click.FloatRange(min=0.0), default=0.004237,
              show_default=True, help="USD per GiB-hour (OpenCost's default).")
@click.option("--max-execs-per-user", type=click.IntRange(min=1), default=8, show_default=True,
              envvar="AGENTTIER_MAX_EXECS_PER_USER",
              help="Execs one caller may run at once; more are refused with 429.")
@click.option("--max-execs", type=click.IntRange(min=1), default=64, show_default=True,
              envvar="AGENTTIER_MAX_EXECS",
              help="Execs the Router runs at once for everyone (its exec threads); more are "
              "refused with 429.")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=1 << 20,
              show_default=True, envvar="AGENTTIER_MAX_BODY_BYTES",
              help="The largest request body accepted; larger ones get 413 before they are read.")
@click.option("--anonymous-interval", type=click.FloatRange(min=0.0), default=60.0,
              show_default=True, envvar="AGENTTIER_ANONYMOUS_INTERVAL",
              help="Seconds over which repeated keyless denials from one address and reason "
              "become one audit record with a count (0: one record each).")
@retention_options
@click.option("--maintenance-interval", type=click.FloatRange(min=1.0), default=300.0,
              show_default=True, envvar="AGENTTIER_MAINTENANCE_INTERVAL",
              help="Seconds between rounds of cost rollups and retention purges (SQL storage).")
@click.option("--purge-batch", type=click.IntRange(1, 1_000_000), default=5000,
              show_default=True, envvar="AGENTTIER_PURGE_BATCH",
              help="Rows a retention purge deletes per transaction.")
@click.option("--purge-pause", type=click.FloatRange(0, 100), default=0.0, show_default=True,
              metavar="RATIO", envvar="AGENTTIER_PURGE_PAUSE",
              help="After each purge batch, wait this many times as long as it took, so "
              "the recorder's writes get through (1 kept MariaDB's ingest at 0.8; see "
              "BENCHMARKS.md).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True, help="Logging level.")
def serve(
    host: str, port: int, storage_url: str | None, storage_file: Path | None,
    control_plane_url: str | None, api_keys: Path | None, admin_group: str,
    oidc_issuer: str | None, oidc_audience: str | None, oidc_groups_claim: str,
    oidc_email_claim: str | None, dev_auth: bool,
    data_dir: Path, spool_dir: Path | None, templates_file: Path | None,
    cost_interval: float, cpu_price: float, memory_price: float,
    max_execs_per_user: int, max_execs: int, max_body_bytes: int, anonymous_interval: float,
    maintenance_interval: float, purge_batch: int, purge_pause: float, log_level: str,
    **retention: str | None,
) -> None:
    """Run the Router: the SDK's REST API, recording every action, transition and cost.

    With the local control plane (the default) sandboxes run on this machine,
    with no isolation: evaluation only. With --control-plane kubernetes:// they
    are a cluster's Sandbox resources. A database that is down or a bad storage
    URL never stops the Router: records are spooled and written once storage
    answers.
    """
    import uvicorn

    from agenttier_router.api import create_app
    from agenttier_router.api.auth import load_keys
    from agenttier_router.api.hosts import loopback_host
    from agenttier_router.api.oidc import IdpUnavailable, OidcError, OidcVerifier
    from agenttier_router.controlplane import ControlPlaneError, ControlPlaneUnavailable
    from agenttier_router.controlplane.templates import DEFAULT_TEMPLATES, load_templates
    from agenttier_router.costs import PriceTable
    from agenttier_router.service import RouterConfig, build_services

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if api_keys is None and not dev_auth and not oidc_issuer:
        raise click.UsageError("pass --api-keys FILE and/or --oidc-issuer URL, "
                               "or --dev-auth to evaluate locally")
    if api_keys is not None and dev_auth:
        where = ("--api-keys" if click.get_current_context().get_parameter_source("api_keys")
                 == ParameterSource.COMMANDLINE else "$AGENTTIER_API_KEYS")
        raise click.UsageError(f"{where} and --dev-auth exclude each other (--dev-auth would "
                               "ignore the keys and make every caller an admin): give one")
    url = storage_url_from(storage_url, storage_file)
    check_port(host, port)
    oidc = None
    if oidc_issuer:
        try:
            oidc = OidcVerifier(oidc_issuer, oidc_audience or "", groups_claim=oidc_groups_claim,
                                email_claim=oidc_email_claim, admin_group=admin_group)
        except OidcError as error:
            raise click.BadParameter(str(error), param_hint="'--oidc-issuer'") from None
        try:
            oidc.refresh()  # warm the keys; an IdP that is down must not stop the Router
        except IdpUnavailable as error:
            log.warning("OIDC: %s; Bearer callers get 503 until it answers", error)
    try:
        keys = load_keys(api_keys, admin_group) if api_keys is not None else None
        templates = load_templates(templates_file) if templates_file else dict(DEFAULT_TEMPLATES)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    if dev_auth:
        loud = ("--dev-auth: EVERY request is treated as an admin, with no key. "
                "Evaluation only.")
        if not loopback_host(host):
            loud += (f" The Router binds to {host}, beyond loopback: anyone who can reach it "
                     "can create sandboxes and run commands on this machine.")
        log.warning(loud)
    policy = retention_policy(retention)
    config = RouterConfig(
        storage_url=url, control_plane_url=control_plane_url or None, keys=keys, oidc=oidc,
        dev_auth=dev_auth, data_dir=data_dir,
        spool_dir=spool_dir or data_dir / "spool", templates=templates,
        prices=PriceTable(cpu_price, memory_price), cost_interval=cost_interval,
        max_execs_per_user=max_execs_per_user, max_execs=max_execs,
        max_body_bytes=max_body_bytes, anonymous_interval=anonymous_interval,
        retention=policy, maintenance_interval=maintenance_interval,
        purge_batch=purge_batch, purge_pause=purge_pause,
    )
    try:
        services = build_services(config)
    except ControlPlaneUnavailable as error:  # e.g. the data dir is another Router's
        raise click.ClickException(str(error)) from None
    except ControlPlaneError as error:
        raise click.BadParameter(str(error), param_hint="'--control-plane'") from None
    except ValueError as error:  # a damaged store of minted API keys: never overwritten
        raise click.ClickException(str(error)) from None
    uvicorn.run(create_app(services), host=host, port=port, log_level=log_level,
                timeout_graceful_shutdown=20)
