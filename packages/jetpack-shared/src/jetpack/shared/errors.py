"""The errors every Jetpack store raises.

All of them derive from :class:`JetpackError`, so ``except JetpackError`` catches
anything a store can raise on purpose. Foreign exceptions (sqlite3, SQLAlchemy,
httpx, websockets) are translated at the boundary and chained with ``from``.

Class tree::

    JetpackError
    ├── NotFoundError        the id does not exist
    ├── ConflictError        id exists, claim lost, dependency cycle, wrong holder
    │   └── LeaseHeldError   another agent holds an overlapping lease
    ├── ValidationError      bad input; ``field`` names it; nothing was written
    ├── UnavailableError     the backend cannot be reached (a retry may help)
    ├── AuthError            the backend refused our credentials
    └── BackendNotInstalledError   a configured backend's distribution is missing

Each error says, through :attr:`JetpackError.retryable`, whether retrying the same
call later can help. Pydantic's own error is imported as ``pydantic.ValidationError``
where both meet.
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "AuthError",
    "BackendNotInstalledError",
    "ConflictError",
    "JetpackError",
    "LeaseHeldError",
    "NotFoundError",
    "UnavailableError",
    "ValidationError",
]


class JetpackError(Exception):
    """Base class of every error a Jetpack store raises on purpose."""

    retryable: bool = False
    """True when the same call may succeed later without changing its input."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(JetpackError):
    """The task, memory, message or lease named by the call does not exist."""

    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"{kind} {id!r} not found")
        self.kind = kind
        self.id = id


class ConflictError(JetpackError):
    """The call conflicts with the current state.

    Examples: the id already exists, the claim was lost to another agent, the
    caller does not hold the claim it tries to complete, a dependency cycle.
    """


class LeaseHeldError(ConflictError):
    """Another agent holds a lease that overlaps the requested path."""

    retryable = True

    def __init__(
        self,
        path: str,
        holder: str | None,
        expires_at: datetime | None,
        *,
        pattern: str | None = None,
    ) -> None:
        until = f" until {expires_at:%H:%M:%S}" if expires_at else ""
        via = f" (through {pattern!r})" if pattern and pattern != path else ""
        super().__init__(f"lease on {path!r} held by {holder or 'another agent'}{until}{via}")
        self.path = path
        self.holder = holder
        self.expires_at = expires_at
        self.pattern = pattern


class ValidationError(JetpackError, ValueError):
    """Bad input. :attr:`field` names the offending field; nothing was written."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class UnavailableError(JetpackError):
    """The backend could not be reached or did not answer in time."""

    retryable = True


class AuthError(JetpackError):
    """The backend refused the credentials (missing, wrong or expired token)."""


class BackendNotInstalledError(JetpackError):
    """Config selects a backend whose distribution is not installed."""

    def __init__(self, name: str, distribution: str) -> None:
        super().__init__(
            f"no backend {name!r} is installed; install it with: pip install {distribution}"
        )
        self.name = name
        self.distribution = distribution
