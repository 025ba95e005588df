"""Calls that are the same call when repeated: the scope a remote store derives its keys from.

A client that reports an outcome over a network (``complete_task`` after a long
attempt) cannot tell a lost request from a lost answer. Inside
``with repeatable(scope):`` a store call made again with the same arguments is
the *same request*: a remote backend sends the same idempotency key each time
(derived from ``scope``, the method, the route and the body), so the Worker
answers a repeat with the first answer and writes nothing twice. Local
backends, whose calls either commit or raise, ignore it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["repeat_scope", "repeatable"]

_SCOPE: ContextVar[str | None] = ContextVar("jetpack_repeat_scope", default=None)


@contextlib.contextmanager
def repeatable(scope: str) -> Iterator[None]:
    """Within the block, store calls repeated with the same arguments are one request.

    ``scope`` names the logical operation and must differ between operations
    that may send identical bodies (e.g. the agent, the task and the attempt).
    """
    if not isinstance(scope, str) or not scope:
        raise ValueError("scope must be a non-empty string")
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)


def repeat_scope() -> str | None:
    """The scope of the enclosing :func:`repeatable` block, or None."""
    return _SCOPE.get()
