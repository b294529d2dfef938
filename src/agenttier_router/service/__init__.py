"""The Router's composition: its parts built from configuration, with no HTTP in sight.

:mod:`.config` holds :class:`RouterConfig`; :mod:`.build` builds the parts
(storage, recorder, cost sampler, control plane) and stops them in order;
:mod:`.recording` turns actions and transitions into records. The HTTP API
(:func:`agenttier_router.api.create_app`) takes the built :class:`Services`.
"""

from __future__ import annotations

from .build import Services, StorageInfo, build_services
from .config import RouterConfig
from .recording import Recording

__all__ = ["Recording", "RouterConfig", "Services", "StorageInfo", "build_services"]
