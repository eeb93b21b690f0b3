"""The root of every error an embedding program can catch from ibkr-connector.

Each layer keeps its own error classes next to the code that raises them (a config error in
``config``, a refused request in ``protocol.requests``...), and every one of them derives from
:class:`IBKRError`, so ``except ibkr_connector.IBKRError`` catches anything the runtime
raises on purpose. Errors that mean the same as a builtin keep that builtin as a second base
(``RequestError`` is also a ``ValueError``), so code written against the builtin still works.

The supervision layer is IB-free and has its own root (``SupervisorError``); the runtime
re-raises those at its boundary as the subclasses in ``runtime`` that derive from both.
"""

from __future__ import annotations

__all__ = ["IBKRError"]


class IBKRError(Exception):
    """Base class of every error ibkr-connector raises to its caller."""
