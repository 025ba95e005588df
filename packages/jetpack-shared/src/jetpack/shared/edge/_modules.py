"""What a cf package contributes to the Worker, and how installed ones are found.

A cf package ships a ``worker/`` data folder next to its Python code::

    jetpack/cf_beads/worker/routes.ts        # default export: a JetpackModule
    jetpack/cf_beads/worker/*.ts             # whatever routes.ts imports
    jetpack/cf_beads/worker/migrations/*.sql # its D1 migrations, numbered

and registers an :class:`EdgeModule` under the entry-point group
``jetpack.edge``::

    [project.entry-points."jetpack.edge"]
    tasks = "jetpack.cf_beads:EDGE_MODULE"

A Worker is composed of the gateway (in jetpack-shared) and every installed
module (:func:`discover_modules`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from jetpack.shared.errors import ConflictError, JetpackError

__all__ = [
    "ENTRY_POINT_GROUP",
    "DurableObjectBinding",
    "EdgeModule",
    "VectorizeBinding",
    "discover_modules",
]

ENTRY_POINT_GROUP = "jetpack.edge"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True, slots=True)
class DurableObjectBinding:
    """A Durable Object class the module exports from ``routes.ts``, and its binding."""

    binding: str
    """Name the code reads it by (``env.MAILBOX``)."""
    class_name: str
    """The exported class (``MailboxDO``); created as a SQLite-backed class."""


@dataclass(frozen=True, slots=True)
class VectorizeBinding:
    """A Vectorize index the module uses when deployed (no local emulator exists)."""

    binding: str
    index_name: str
    dimensions: int
    metric: str = "cosine"


ConfigHook = Callable[[dict[str, Any], Mapping[str, Any]], None]
"""Edits the generated wrangler config in place, given the build's ``features``."""


@dataclass(frozen=True, slots=True)
class EdgeModule:
    """One cf package's part of the Worker.

    Args:
        name: short name (``tasks``); also its migrations folder in the build.
        package: the Python package holding the ``worker/`` data folder.
        durable_objects: classes exported by ``routes.ts`` with their bindings.
        durable_object_migrations: the module's wrangler DO migrations, in
            order (tags prefixed with the module name, e.g. ``mail-v1``).
        vectorize: indexes bound when deployed.
        ai_binding: name of the Workers AI binding the module reads, if any.
        exports: other classes ``routes.ts`` exports that the Worker's main
            module re-exports without binding them (e.g. a test-only Durable
            Object that a ``configure`` hook binds when a feature asks for it).
        configure: a hook that adjusts the generated wrangler config (e.g. a
            test-only stand-in binding switched on by a build feature).
    """

    name: str
    package: str
    durable_objects: Sequence[DurableObjectBinding] = ()
    durable_object_migrations: Sequence[Mapping[str, Any]] = ()
    vectorize: Sequence[VectorizeBinding] = ()
    ai_binding: str | None = None
    exports: Sequence[str] = ()
    configure: ConfigHook | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"edge module name {self.name!r}: lower-case letters, digits, _")

    @property
    def worker_dir(self) -> Path:
        """The module's ``worker/`` folder (``routes.ts``, ``migrations/``)."""
        with as_file(files(self.package) / "worker") as path:
            return Path(path)

    @property
    def migrations(self) -> list[Path]:
        """Its D1 migration files, in order."""
        folder = self.worker_dir / "migrations"
        return sorted(folder.glob("*.sql")) if folder.is_dir() else []


def discover_modules(names: Sequence[str] | None = None) -> list[EdgeModule]:
    """Installed modules, sorted by name (only ``names`` when given).

    Two packages registering the same name is a ConflictError; an entry point
    that fails to load, or loads something else, is a JetpackError naming it.
    """
    found: dict[str, EdgeModule] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if names is not None and ep.name not in names:
            continue
        try:
            module = ep.load()
        except Exception as exc:
            raise JetpackError(
                f"edge module {ep.name!r} ({ep.value}) failed to load: {exc}"
            ) from exc
        if not isinstance(module, EdgeModule):
            raise JetpackError(f"edge module {ep.name!r} ({ep.value}) is not an EdgeModule")
        if module.name in found and found[module.name] != module:
            raise ConflictError(f"edge module {module.name!r} is registered twice")
        found[module.name] = module
    if names is not None:
        missing = sorted(set(names) - found.keys())
        if missing:
            raise JetpackError(
                f"no edge module named {', '.join(missing)} is installed "
                "(pip install jetpack-cf-beads, jetpack-cf-mail or jetpack-cf-cass)"
            )
    return [found[name] for name in sorted(found)]
