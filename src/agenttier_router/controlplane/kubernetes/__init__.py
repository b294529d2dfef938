"""The ``kubernetes`` control plane: the Router drives AgentTier's Sandbox custom resources.

Needs the optional extra: ``pip install 'agenttier-router[kubernetes]'``.

- :mod:`.plane`: :class:`KubernetesControlPlane`, the contract over the Kubernetes API;
- :mod:`.informer`: list+watch kept in memory, so reads never call the API server;
- :mod:`.objects`: Sandbox objects -> sandboxes and transitions, with ids derived from
  the objects (why no leader election is needed is explained there);
- :mod:`.events`: Kubernetes Events about Sandboxes, read and written;
- :mod:`.templates`: ClusterSandboxTemplates and SandboxTemplates, ``inheritsFrom`` resolved;
- :mod:`.exec`: commands through the ``pods/exec`` WebSocket;
- :mod:`.url`: ``kubernetes://?context=NAME&namespace=NS``.

::

    plane = from_url("kubernetes://?namespace=team-a", recorder_sink)
"""

from __future__ import annotations

try:
    import kubernetes as _client  # noqa: F401  (the official client, an optional extra)
except ImportError as error:  # pragma: no cover - the dev install has it
    raise ImportError("the kubernetes control plane needs the official Kubernetes client: "
                      "pip install 'agenttier-router[kubernetes]'") from error

from .plane import KubernetesControlPlane
from .url import from_url

__all__ = ["KubernetesControlPlane", "from_url"]
