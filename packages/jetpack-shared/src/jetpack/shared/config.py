"""Project configuration: ``.jetpack/config.toml``, then ``JETPACK_*`` variables.

Example file::

    mode = "local"                 # local | hybrid | edge

    [stores]                       # per-store override: local | cloudflare
    memory = "cloudflare"

    [local]
    tasks_db = ".beads/beads.db"
    mail_dir = ".mail"
    memory_db = ".cass/memories.db"

    [cloudflare]
    worker_url = "https://jetpack.example.workers.dev"
    # never a token here: `jetpack edge login` keeps it outside the repository

Environment variables (each overrides the file):

==========================  ======================================  ==========
variable                    key                                     default
==========================  ======================================  ==========
JETPACK_MODE                mode                                    local
JETPACK_TASKS_BACKEND       stores.tasks                            by mode
JETPACK_MAIL_BACKEND        stores.mail                             by mode
JETPACK_MEMORY_BACKEND      stores.memory                           by mode
JETPACK_TASKS_DB            local.tasks_db                          .beads/beads.db
JETPACK_MAIL_DIR            local.mail_dir                          .mail
JETPACK_MEMORY_DB           local.memory_db                         .cass/memories.db
JETPACK_WORKER_URL          cloudflare.worker_url                   (none)
JETPACK_API_TOKEN           cloudflare.api_token                    (none)
JETPACK_ACCOUNT_ID          cloudflare.account_id                   (none)
JETPACK_D1_DATABASE_ID      cloudflare.d1_database_id               (none)
JETPACK_VECTORIZE_INDEX     cloudflare.vectorize_index_name         jetpack-memories
==========================  ======================================  ==========

The project token is, in this order: ``JETPACK_API_TOKEN``, ``api_token`` of the
file (discouraged: the file is tracked), else the token ``jetpack edge login``
saved for ``worker_url`` in the user's credentials file
(:mod:`jetpack.shared.credentials`); ``cloudflare.api_token_source`` says which.

The edge tooling (``jetpack.shared.edge``, ``jetpack edge``) also reads
``JETPACK_ADMIN_TOKEN`` (a Worker's admin secret; a local Worker otherwise keeps
one in ``.jetpack/edge/admin-token``), ``JETPACK_EDGE_CACHE`` (where the npm
toolchain goes; default ``~/.cache/jetpack/edge``) and ``JETPACK_EDGE_NODE`` (a
Node.js >= 22.12 binary to use).

Modes: ``local`` puts every store on this machine, ``edge`` on the Worker,
``hybrid`` is to keep local stores that sync with the Worker (the sync is not
built yet: today its stores are plain local ones, and ``jetpack`` says so). A ``[stores]`` entry
overrides the mode for one store. Tables other than these (``[agents]``,
``[claude]``, ...) belong to the tools that read them and are kept as they are.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import ConfigDict, Field, SecretStr

from jetpack.shared._base import JetpackModel, from_pydantic
from jetpack.shared.credentials import credentials_path, load_credential
from jetpack.shared.errors import ValidationError

__all__ = [
    "CONFIG_FILE",
    "ENV_VARS",
    "Backend",
    "CloudflareConfig",
    "JetpackConfig",
    "LocalPaths",
    "Mode",
    "StoreKind",
    "StoresConfig",
    "dump_toml",
    "load_config",
]

CONFIG_FILE = Path(".jetpack") / "config.toml"
"""Where the config lives, relative to the project root."""

StoreKind = Literal["tasks", "mail", "memory"]


class Mode(StrEnum):
    """Where state lives."""

    LOCAL = "local"
    HYBRID = "hybrid"
    EDGE = "edge"


class Backend(StrEnum):
    """Backend family of one store."""

    LOCAL = "local"
    CLOUDFLARE = "cloudflare"


class _FileTable(JetpackModel):
    """A table of the config file: unknown keys are kept aside (``model_extra``), not refused.

    A config file may be shared with a newer version that knows more keys; the
    ``jetpack`` command warns about each one, naming the nearest known key.
    """

    model_config = ConfigDict(extra="allow", validate_default=True, populate_by_name=True)


class StoresConfig(_FileTable):
    """Per-store override of the mode."""

    tasks: Backend | None = Field(default=None, description="Task store backend.")
    mail: Backend | None = Field(default=None, description="Mail bus backend.")
    memory: Backend | None = Field(default=None, description="Memory store backend.")


class LocalPaths(_FileTable):
    """Where the local stores keep their files, relative to the project root."""

    tasks_db: Path = Field(default=Path(".beads/beads.db"), description="Task database.")
    mail_dir: Path = Field(default=Path(".mail"), description="Mail store folder.")
    memory_db: Path = Field(default=Path(".cass/memories.db"), description="Memory database.")


class CloudflareConfig(_FileTable):
    """How to reach the Jetpack Worker. The token never appears in reprs or logs."""

    worker_url: str | None = Field(default=None, pattern=r"^https?://", description="Worker URL.")
    api_token: SecretStr | None = Field(default=None, description="Bearer token.")
    api_token_source: str | None = Field(
        default=None,
        exclude=True,
        description="Where the token came from: JETPACK_API_TOKEN, the config file or the "
        "credentials file (set by load_config; never the token).",
    )
    account_id: str | None = Field(default=None, description="Cloudflare account id.")
    d1_database_id: str | None = Field(default=None, description="D1 database id.")
    vectorize_index_name: str = Field(default="jetpack-memories", description="Vectorize index.")


class JetpackConfig(JetpackModel):
    """The whole configuration of one project."""

    model_config = ConfigDict(extra="allow", validate_default=True)

    mode: Mode = Field(default=Mode.LOCAL, description="local, hybrid or edge.")
    stores: StoresConfig = Field(default_factory=StoresConfig, description="Per-store override.")
    local: LocalPaths = Field(default_factory=LocalPaths, description="Local store paths.")
    cloudflare: CloudflareConfig = Field(default_factory=CloudflareConfig, description="Edge.")
    project_dir: Path = Field(default=Path("."), exclude=True, description="Project root.")

    def backend_for(self, store: StoreKind) -> Backend:
        """The backend family that serves ``store``: its override, else by mode."""
        override: Backend | None = getattr(self.stores, store)
        if override is not None:
            return override
        return Backend.CLOUDFLARE if self.mode is Mode.EDGE else Backend.LOCAL

    def path(self, relative: Path) -> Path:
        """Resolve a configured path against the project root."""
        return relative if relative.is_absolute() else self.project_dir / relative

    def section(self, name: str) -> dict[str, Any]:
        """A tool's own table (``[agents]``, ``[claude]``…), or an empty dict."""
        extra = self.model_extra or {}
        value = extra.get(name, {})
        return dict(value) if isinstance(value, Mapping) else {}


ENV_VARS: dict[str, tuple[str, ...]] = {
    "JETPACK_MODE": ("mode",),
    "JETPACK_TASKS_BACKEND": ("stores", "tasks"),
    "JETPACK_MAIL_BACKEND": ("stores", "mail"),
    "JETPACK_MEMORY_BACKEND": ("stores", "memory"),
    "JETPACK_TASKS_DB": ("local", "tasks_db"),
    "JETPACK_MAIL_DIR": ("local", "mail_dir"),
    "JETPACK_MEMORY_DB": ("local", "memory_db"),
    "JETPACK_WORKER_URL": ("cloudflare", "worker_url"),
    "JETPACK_API_TOKEN": ("cloudflare", "api_token"),
    "JETPACK_ACCOUNT_ID": ("cloudflare", "account_id"),
    "JETPACK_D1_DATABASE_ID": ("cloudflare", "d1_database_id"),
    "JETPACK_VECTORIZE_INDEX": ("cloudflare", "vectorize_index_name"),
}
"""Every environment variable read, and the config key it sets."""


def load_config(
    project_dir: str | os.PathLike[str] = ".",
    env: Mapping[str, str] | None = None,
) -> JetpackConfig:
    """Load ``<project_dir>/.jetpack/config.toml`` (if present), then apply ``JETPACK_*``.

    A bad value raises :class:`ValidationError` whose field names the key and
    where it came from, e.g. ``mode (JETPACK_MODE)`` or ``mode (.jetpack/config.toml)``.
    """
    root = Path(project_dir)
    env = os.environ if env is None else env
    file = root / CONFIG_FILE
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ValidationError(str(CONFIG_FILE), f"not valid TOML: {exc}") from exc
    sources: dict[tuple[str, ...], str] = {}
    for var, key in ENV_VARS.items():
        value = env.get(var)
        if value is None or value == "":
            continue
        node = data
        for part in key[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValidationError(f"{part} ({CONFIG_FILE})", "must be a table")
        node[key[-1]] = value
        sources[key] = var
    try:
        config = JetpackConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        err = from_pydantic(exc, "config")
        loc = tuple(str(p) for p in exc.errors()[0].get("loc", ()))
        origin = next((var for key, var in sources.items() if loc[: len(key)] == key), None)
        where = origin or str(CONFIG_FILE)
        raise ValidationError(f"{err.field} ({where})", err.reason) from exc
    config.project_dir = root
    _find_token(config.cloudflare, "JETPACK_API_TOKEN" in sources.values(), env)
    return config


def _find_token(edge: CloudflareConfig, from_env: bool, env: Mapping[str, str]) -> None:
    """Take the token from the credentials file when neither variable nor file gives one."""
    if edge.api_token is not None:
        edge.api_token_source = "JETPACK_API_TOKEN" if from_env else str(CONFIG_FILE)
        return
    edge.api_token_source = None
    if not edge.worker_url:
        return
    saved = load_credential(edge.worker_url, env)
    if saved is not None:
        edge.api_token = SecretStr(saved.token)
        edge.api_token_source = str(credentials_path(env))


def dump_toml(data: Mapping[str, Any]) -> str:
    """Write a config mapping (scalars, lists, nested tables) as TOML."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for name, table in tables:
        body = dump_toml(table)
        lines.append("")
        lines.append(f"[{_toml_key(name)}]")
        for line in body.splitlines():
            if line.startswith("["):
                line = f"[{_toml_key(name)}.{line[1:]}"
            lines.append(line)
    return "\n".join(lines).strip("\n") + "\n"


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'
