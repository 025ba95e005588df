"""Backend discovery through the ``jetpack.backends`` entry-point group.

A backend distribution registers its store class under a name
``<store>.<family>``::

    [project.entry-points."jetpack.backends"]
    "tasks.local" = "jetpack.beads:BeadsAdapter"

The class must offer ``from_config(config, *, agent_id)`` returning an unopened
store. :func:`create_adapters` builds all three stores the config asks for;
:func:`config_options` reads a backend's own table of the config.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import TracebackType
from typing import Any, Protocol, Self, cast

from jetpack.shared._protocols import MailBus, MemoryStore, TaskStore
from jetpack.shared.config import JetpackConfig, StoreKind
from jetpack.shared.errors import BackendNotInstalledError, ConflictError, JetpackError
from jetpack.shared.rules import nearest

__all__ = [
    "ENTRY_POINT_GROUP",
    "KNOWN_BACKENDS",
    "Adapters",
    "BackendFactory",
    "BackendInfo",
    "config_options",
    "create_adapters",
    "create_store",
    "discover_backends",
    "load_backend",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "jetpack.backends"

KNOWN_BACKENDS: dict[str, str] = {
    "tasks.local": "jetpack-beads",
    "tasks.cloudflare": "jetpack-cf-beads",
    "mail.local": "jetpack-mcp-mail",
    "mail.cloudflare": "jetpack-cf-mail",
    "memory.local": "jetpack-cass",
    "memory.cloudflare": "jetpack-cf-cass",
}
"""Backend name → the distribution that provides it (for install hints)."""


class BackendFactory(Protocol):
    """What an entry point must load: a class with ``from_config``."""

    @classmethod
    def from_config(cls, config: JetpackConfig, *, agent_id: str) -> Any:
        """Build an unopened store from the project config."""
        ...


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """One installed backend."""

    name: str
    value: str
    distribution: str
    version: str


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found and found[ep.name].value != ep.value:
            raise ConflictError(
                f"backend {ep.name!r} is registered twice: {found[ep.name].value} and {ep.value}"
            )
        found[ep.name] = ep
    return found


def discover_backends() -> list[BackendInfo]:
    """Every installed backend, sorted by name, with its distribution and version."""
    infos = []
    for name, ep in sorted(_entry_points().items()):
        dist = ep.dist
        infos.append(
            BackendInfo(
                name=name,
                value=ep.value,
                distribution=dist.name if dist else "?",
                version=dist.version if dist else "?",
            )
        )
    return infos


def load_backend(name: str) -> BackendFactory:
    """Load the class registered as ``name``; a missing one names what to pip-install."""
    ep = _entry_points().get(name)
    if ep is None:
        raise BackendNotInstalledError(
            name, KNOWN_BACKENDS.get(name, f"a package providing {name}")
        )
    try:
        loaded = ep.load()
    except Exception as exc:
        raise JetpackError(f"backend {name!r} ({ep.value}) failed to load: {exc}") from exc
    if not hasattr(loaded, "from_config"):
        raise JetpackError(f"backend {name!r} ({ep.value}) has no from_config()")
    return cast(BackendFactory, loaded)


def config_options(config: JetpackConfig, table: str, known: Collection[str]) -> dict[str, Any]:
    """A backend's options from its own table (``[beads]``…) of the config.

    Keys the backend does not know are logged (with the nearest known name) and
    left out: a config file may be shared with a newer version that knows more.
    Options passed in code are checked strictly instead (``rules.check_options``).
    """
    options = config.section(table)
    for key in sorted(options.keys() - set(known)):
        hint = nearest(key, known)
        logger.warning(
            "unknown key %r in [%s] of the config; ignored%s",
            key,
            table,
            f" (did you mean {hint!r}?)" if hint else "",
        )
        del options[key]
    return options


def create_store(config: JetpackConfig, store: StoreKind, *, agent_id: str = "cli") -> Any:
    """Build the (unopened) store of one kind, from its configured backend."""
    name = f"{store}.{config.backend_for(store).value}"
    return load_backend(name).from_config(config, agent_id=agent_id)


@dataclass(slots=True)
class Adapters:
    """The three stores of a project; ``async with`` opens and closes all of them."""

    tasks: TaskStore
    mail: MailBus
    memory: MemoryStore

    async def __aenter__(self) -> Self:
        opened: list[Any] = []
        try:
            for store in (self.tasks, self.mail, self.memory):
                await store.__aenter__()
                opened.append(store)
        except BaseException:
            for store in reversed(opened):
                await store.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for store in (self.memory, self.mail, self.tasks):
            try:
                await store.__aexit__(exc_type, exc, tb)
            except Exception:
                logger.exception("closing %s failed", type(store).__name__)


def create_adapters(config: JetpackConfig, *, agent_id: str = "cli") -> Adapters:
    """Build the task store, mail bus (for ``agent_id``) and memory store the config asks for."""
    return Adapters(
        tasks=create_store(config, "tasks", agent_id=agent_id),
        mail=create_store(config, "mail", agent_id=agent_id),
        memory=create_store(config, "memory", agent_id=agent_id),
    )
