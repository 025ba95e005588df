"""Reference stores wrapped with ``from_config``, for registry tests (never registered)."""

from __future__ import annotations

from typing import Self

from jetpack.shared.config import JetpackConfig
from jetpack.shared.testing._reference_mail import InMemoryMailBus, InMemoryMailHub
from jetpack.shared.testing._reference_memory import InMemoryMemoryStore
from jetpack.shared.testing._reference_tasks import InMemoryTaskStore

__all__ = ["Mail", "Memory", "Tasks"]

_HUB = InMemoryMailHub()


class Tasks(InMemoryTaskStore):
    """InMemoryTaskStore built from config."""

    @classmethod
    def from_config(cls, config: JetpackConfig, *, agent_id: str) -> InMemoryTaskStore:
        """Ignore the config: the reference store keeps nothing on disk."""
        return InMemoryTaskStore()


class Mail(InMemoryMailBus):
    """InMemoryMailBus built from config."""

    @classmethod
    def from_config(cls, config: JetpackConfig, *, agent_id: str) -> Self:
        """One hub per process."""
        return cls(agent_id, hub=_HUB)


class Memory(InMemoryMemoryStore):
    """InMemoryMemoryStore built from config."""

    @classmethod
    def from_config(cls, config: JetpackConfig, *, agent_id: str) -> InMemoryMemoryStore:
        """Ignore the config."""
        return InMemoryMemoryStore()
