"""Choosing a control plane by URL, as storage is chosen by its URL.

::

    plane = open_control_plane("local:///var/lib/agenttier", sink, templates=DEFAULT_TEMPLATES)
    plane = open_control_plane("kubernetes://?context=prod&namespace=agents", sink)

- ``local:///abs/dir`` or ``local://rel/dir``: sandboxes on this machine, under that
  directory (evaluation only: no isolation).
- ``kubernetes://``: AgentTier's Sandbox resources, through the kubeconfig in
  ``KUBECONFIG`` or ``~/.kube/config``, or the in-cluster config inside a pod;
  ``?context=NAME`` picks a context and ``?namespace=NS`` keeps the Router to one
  namespace. It needs the ``[kubernetes]`` extra, imported only when chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .base import ControlPlane, InvalidRequest, Template, TransitionSink
from .local import LocalControlPlane

__all__ = ["SCHEMES", "local_root", "open_control_plane"]

SCHEMES = ("local", "kubernetes")
"""The control-plane URL schemes understood."""

_FORMS = "local:///path/to/data-dir or kubernetes://[?context=NAME&namespace=NS]"


def local_root(url: str) -> Path:
    """The data directory a ``local:`` URL names; :class:`InvalidRequest` if it names none."""
    parts = urlsplit(url)
    if parts.scheme != "local" or parts.query or parts.fragment:
        raise InvalidRequest(f"not a local control-plane URL: {url!r}; expected {_FORMS}")
    path = parts.netloc + parts.path
    if not path:
        raise InvalidRequest(f"{url!r} names no directory; expected {_FORMS}")
    return Path(path)


def open_control_plane(
    url: str, sink: TransitionSink, *, templates: Mapping[str, Template]
) -> ControlPlane:
    """Open the control plane ``url`` names, emitting every transition to ``sink``.

    ``templates`` are the local plane's; a Kubernetes plane reads its own from
    the cluster. Raises :class:`InvalidRequest` for a URL it cannot use, with
    the forms it accepts.
    """
    scheme = urlsplit(url).scheme
    if scheme == "local":
        return LocalControlPlane(local_root(url), templates, sink)
    if scheme == "kubernetes":
        try:
            kubernetes = importlib.import_module("agenttier_router.controlplane.kubernetes")
        except ImportError as error:
            raise InvalidRequest(
                f"the kubernetes control plane needs its extra: "
                f"pip install 'agenttier-router[kubernetes]' ({error})"
            ) from None
        plane: ControlPlane = kubernetes.from_url(url, sink)
        return plane
    raise InvalidRequest(f"unknown control-plane URL {url!r}; expected {_FORMS}")
