"""The ``async with`` half of every store, written once."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["AsyncStoreMixin"]


class AsyncStoreMixin:
    """``async with store:`` calls :meth:`open`, then :meth:`aclose` on the way out.

    A store overrides the two methods (both do nothing here); a mail bus points
    them at ``initialize``/``shutdown``.
    """

    async def open(self) -> None:
        """Open files, connections and workers (idempotent)."""

    async def aclose(self) -> None:
        """Release what :meth:`open` acquired (idempotent)."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
