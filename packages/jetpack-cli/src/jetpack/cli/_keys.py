"""Which keys ``.jetpack/config.toml`` may hold, and the nearest one to a misspelt key.

The keys come from where they are defined: the project config model of
``jetpack.shared.config`` (``mode``, ``[stores]``, ``[local]``, ``[cloudflare]``),
the CLI's own settings (``[orchestrator]``, ``[agents]``, ``[claude]``) and the
keyword arguments of the installed local store classes (``[beads]``, ``[cass]``),
which their ``from_config`` reads. An unknown key in a file is warned about, not
refused (a file may be shared with a newer version); ``jetpack config set``
refuses one.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, cast

from pydantic import BaseModel

from jetpack.cli._settings import Settings
from jetpack.shared.config import CloudflareConfig, JetpackConfig, LocalPaths, StoresConfig
from jetpack.shared.errors import JetpackError, ValidationError
from jetpack.shared.registry import load_backend

__all__ = ["check_key", "known_keys", "nearest", "unknown_keys"]

_STORE_TABLES = {"beads": "tasks.local", "cass": "memory.local"}
"""Tables read by a local store's ``from_config``, and the backend that reads them."""


def _fields(model: type[BaseModel]) -> set[str]:
    return {name for name, info in model.model_fields.items() if not info.exclude}


def _store_keys(backend: str) -> set[str] | None:
    """Keyword options of a store class (what its ``from_config`` passes on), if installed."""
    try:
        factory = load_backend(backend)
    except JetpackError:
        return None
    params = list(inspect.signature(cast(Any, factory)).parameters.values())[1:]  # after the path
    return {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def known_keys(*, stores: bool = True) -> dict[str, set[str]]:
    """Table name ("" for the top level) → the keys it may hold.

    ``stores=False`` leaves out the store tables (``[beads]``, ``[cass]``), whose keys
    come from importing the store classes (numpy and all, for the memory store): a
    command that opens no such store does not pay for it.
    """
    tables: dict[str, set[str]] = {
        "stores": _fields(StoresConfig),
        "local": _fields(LocalPaths),
        "cloudflare": _fields(CloudflareConfig),
    }
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            tables[name] = _fields(annotation)
    for table, backend in _STORE_TABLES.items():
        keys = _store_keys(backend) if stores else None
        if keys is not None:
            tables[table] = keys
    tables[""] = (_fields(JetpackConfig) - set(tables)) | set(tables) | set(_STORE_TABLES)
    return tables


def nearest(word: str, choices: set[str]) -> str | None:
    """The closest of ``choices`` to ``word``, if any is close."""
    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def _unknown(table: str, key: str, keys: set[str]) -> str:
    dotted = f"{table}.{key}" if table else key
    close = nearest(key, keys)
    hint = f" (did you mean {table + '.' if table else ''}{close}?)" if close else ""
    return f"unknown key {dotted}{hint}"


def check_key(dotted: str) -> None:
    """Refuse a dotted key that no table defines (``ValidationError`` naming the nearest)."""
    tables = known_keys()
    parts = dotted.split(".")
    if len(parts) == 1:
        if parts[0] in tables and parts[0] != "":
            raise ValidationError(dotted, "is a table: set one of its keys (table.key)")
        if parts[0] not in tables[""]:
            raise ValidationError(dotted, _unknown("", parts[0], tables[""]))
        return
    table, key = parts[0], ".".join(parts[1:])
    if table in _STORE_TABLES and table not in tables:
        return  # its store is not installed: nothing to check against
    if table not in tables:
        close = nearest(table, set(tables) - {""})
        hint = f" (did you mean [{close}]?)" if close else ""
        raise ValidationError(dotted, f"unknown table [{table}]{hint}")
    if key not in tables[table]:
        raise ValidationError(dotted, _unknown(table, key, tables[table]))


def unknown_keys(config: JetpackConfig, *, stores: bool = False) -> list[str]:
    """One line per unknown key of the known tables (other tables belong to other tools).

    The store tables are checked only with ``stores=True`` (see :func:`known_keys`).
    """
    tables = known_keys(stores=stores)
    warnings: list[str] = []
    extra: dict[str, Any] = dict(config.model_extra or {})
    for name in ("stores", "local", "cloudflare"):  # the config model's own tables
        extra[name] = cast(BaseModel, getattr(config, name)).model_extra or {}
    for name, value in extra.items():
        if isinstance(value, dict):
            if name in tables:
                for key in value:
                    if key not in tables[name]:
                        warnings.append(_unknown(name, key, tables[name]))
        elif name not in tables[""]:
            warnings.append(_unknown("", name, tables[""]))
    return warnings
