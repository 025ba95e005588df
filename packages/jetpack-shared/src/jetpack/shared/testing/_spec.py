"""StoreSpec: a picklable recipe that builds a store, in this process or another."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StoreSpec"]


@dataclass(frozen=True)
class StoreSpec:
    """How to build an unopened store: ``factory`` is ``"module:attribute"``.

    Keep ``kwargs`` picklable (paths as strings) when the backend runs the kit's
    multi-process races; the kit calls :meth:`build` inside child processes.
    """

    factory: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def build(self, *args: Any, **overrides: Any) -> Any:
        """Import the factory and call it with ``kwargs`` updated by ``overrides``."""
        module_name, _, attr = self.factory.partition(":")
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
        return target(*args, **{**self.kwargs, **overrides})
