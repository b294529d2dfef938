"""AgentTier Router's historical records.

The sub-packages follow the data flow: :mod:`agenttier_router.storage` holds the
records, the backends that write and read them, and the schema; the CLI in
:mod:`agenttier_router.cli` is a thin shell over it.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
