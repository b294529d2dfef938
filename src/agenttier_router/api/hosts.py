"""Whether a host name or ``Host`` header names this machine's loopback: one check for all.

Used by the ``--dev-auth`` guard (``Host`` headers), by OIDC (plain-HTTP issuers are
accepted only on loopback) and by ``serve`` (its warning when it binds beyond loopback).
"""

from __future__ import annotations

import ipaddress

__all__ = ["loopback_host"]


def loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or address, with or without a port) is this machine's loopback."""
    name = host.strip().lower()
    if name.startswith("["):  # [::1]:8080
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
