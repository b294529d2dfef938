"""``kubernetes://`` URLs: which cluster, which context, which namespace.

::

    kubernetes://                                  # KUBECONFIG / ~/.kube/config, or in-cluster
    kubernetes://?context=prod&namespace=team-a    # one context; one namespace only

The kubeconfig is the first of: the files in ``KUBECONFIG`` (a list, like
kubectl's), ``~/.kube/config``; with neither, the in-cluster configuration of a
pod (its ServiceAccount token). ``namespace`` restricts the Router to one
namespace (and its RBAC then needs only a Role there).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubernetes import client
from kubernetes import config as _config
from kubernetes.config.config_exception import ConfigException

from ..base import InvalidRequest, TransitionSink
from ..checks import check_label
from .plane import KubernetesControlPlane

__all__ = ["KubernetesURL", "client_for", "from_url", "parse_url"]

config: Any = _config  # untyped

_KEYS = frozenset({"context", "namespace"})


class KubernetesURL:
    """A parsed ``kubernetes://`` URL: ``context`` and ``namespace``, each None when absent."""

    def __init__(self, context: str | None, namespace: str | None) -> None:
        self.context = context
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"KubernetesURL(context={self.context!r}, namespace={self.namespace!r})"


def parse_url(url: str) -> KubernetesURL:
    """Parse a ``kubernetes://`` URL; raise :class:`InvalidRequest` naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != "kubernetes":
        raise InvalidRequest(f"not a kubernetes:// URL: {url!r}")
    if parts.netloc or parts.path not in ("", "/") or parts.fragment:
        raise InvalidRequest(
            f"a kubernetes:// URL takes no host or path, only ?context=NAME&namespace=NS "
            f"(got {url!r})")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - _KEYS)
    if unknown:
        raise InvalidRequest(f"unknown kubernetes:// option(s) {unknown}; known: "
                             f"{sorted(_KEYS)}")
    values: dict[str, str | None] = {}
    for key in _KEYS:
        given = query.get(key)
        if given is None:
            values[key] = None
            continue
        if len(given) != 1 or not given[0]:
            raise InvalidRequest(f"kubernetes:// option {key!r} needs exactly one non-empty "
                                 "value")
        values[key] = given[0]
    if values["namespace"] is not None:
        check_label(values["namespace"], "namespace")
    return KubernetesURL(values["context"], values["namespace"])


def _kubeconfig_files() -> list[Path]:
    listed = os.environ.get("KUBECONFIG", "")
    files = [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    if not files:
        files = [Path("~/.kube/config").expanduser()]
    return [f for f in files if f.is_file()]


_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def client_for(url: str) -> tuple[client.ApiClient, str]:
    """An API client for a ``kubernetes://`` URL, and the namespace the Router itself is in.

    The Router's namespace is the current context's namespace (``default`` if it
    names none) with a kubeconfig, or the pod's own namespace in-cluster; it is
    where the Router keeps its own objects (the Secrets of minted API keys),
    whatever namespace ``?namespace=`` keeps the sandboxes to. Raises
    :class:`InvalidRequest` as :func:`from_url` does.
    """
    parsed = parse_url(url)
    configuration = client.Configuration()
    files = _kubeconfig_files()
    try:
        if files:
            joined = os.pathsep.join(str(f) for f in files)
            config.load_kube_config(config_file=joined, context=parsed.context,
                                    client_configuration=configuration)
            contexts, active = config.list_kube_config_contexts(config_file=joined)
            chosen = next((c for c in contexts if c.get("name") == parsed.context), active)
            home = str(((chosen or {}).get("context") or {}).get("namespace") or "default")
        elif parsed.context is not None:
            raise InvalidRequest(f"no kubeconfig to take context {parsed.context!r} from "
                                 "(set KUBECONFIG or write ~/.kube/config)")
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
            try:
                home = _SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
            except OSError:
                home = "default"
        else:
            raise InvalidRequest("no Kubernetes configuration: set KUBECONFIG, write "
                                 "~/.kube/config, or run the Router inside a pod")
    except ConfigException as error:
        raise InvalidRequest(f"cannot load the Kubernetes configuration: {error}") from error
    return client.ApiClient(configuration), home


def from_url(url: str, sink: TransitionSink, *,
             watch_timeout: float = 300.0) -> KubernetesControlPlane:
    """Build a :class:`KubernetesControlPlane` from a ``kubernetes://`` URL (see module doc).

    Raises :class:`InvalidRequest` for a bad URL, no configuration to load, or a
    kubeconfig the client refuses (an unknown context...).
    """
    api_client, _ = client_for(url)
    return KubernetesControlPlane(api_client, sink, namespace=parse_url(url).namespace,
                                  watch_timeout=watch_timeout)
