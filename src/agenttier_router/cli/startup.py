"""What ``serve`` and ``watch`` both check as they start: the storage URL and the port."""

from __future__ import annotations

import errno
import logging
import os
import socket
from pathlib import Path

import click
from click.core import ParameterSource

from agenttier_router.storage import mask_secrets, url_from_env

from .options import read_secret_file

__all__ = ["check_port", "storage_url_from"]

log = logging.getLogger("agenttier_router.serve")


def storage_url_from(given: str | None, file: Path | None) -> str | None:
    """The storage URL: ``--storage``, else ``--storage-file``'s content, else the environment.

    A password in ``--storage`` is visible to every local user (``ps``), so
    it is used, with a warning that says how to keep it off the command line.
    """
    if given is not None and file is not None:
        ctx = click.get_current_context()
        if ctx.get_parameter_source("storage_file") == ParameterSource.COMMANDLINE:
            raise click.UsageError("--storage and --storage-file both give the URL: give one")
    if given is not None:
        if mask_secrets(given) != given:
            log.warning("--storage holds a password, which every user of this machine can "
                        "read in the process list ('ps'); pass the URL in a file "
                        "(--storage-file) or in $STORAGE_DSN instead")
        return given
    if file is not None:
        return read_secret_file(file, "--storage-file")
    return url_from_env(os.environ)


def check_port(host: str, port: int) -> None:
    """Fail with one clear line when ``host:port`` is taken, before anything else starts.

    Otherwise the first error would come from whatever the new Router starts
    first: with the same data dir, the spool, "in use by another recorder".
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return  # uvicorn reports a host it cannot resolve
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise click.ClickException(
                    f"port {port} on {host} is already in use (another Router, or another "
                    "program, listens there): stop it, or pass another --port") from None
            raise click.ClickException(f"cannot bind {host}:{port}: {error.strerror}") from None
