"""Project tokens kept by ``jetpack edge login``: outside every repository, mode 0600.

One file per user, ``$XDG_CONFIG_HOME/jetpack/credentials.toml`` (else
``~/.config/jetpack/credentials.toml``), with one table per Worker URL::

    ["https://jetpack.example.workers.dev"]
    token = "jp_…"
    project = "acme"
    token_id = "tok_…"
    saved_at = "2025-06-01T12:00:00+00:00"

:func:`~jetpack.shared.config.load_config` takes the token from here when
neither ``JETPACK_API_TOKEN`` nor the config file gives one, for the
configured ``worker_url``. The file is written atomically with mode 0600 in a
folder of mode 0700; a file others can read is still used, with a warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from jetpack.shared.errors import ValidationError

__all__ = [
    "CREDENTIALS_NAME",
    "Credential",
    "credentials_path",
    "load_credential",
    "permission_problem",
    "remove_credential",
    "save_credential",
    "worker_key",
]

logger = logging.getLogger(__name__)

CREDENTIALS_NAME = Path("jetpack") / "credentials.toml"
"""The file's path under the user's config folder."""


@dataclass(frozen=True, slots=True)
class Credential:
    """A project token for one Worker. The token never appears in a repr."""

    url: str
    token: str = field(repr=False)
    project: str | None = None
    token_id: str | None = None
    saved_at: str | None = None


def credentials_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The credentials file: ``$XDG_CONFIG_HOME``, else ``$HOME/.config`` (None: neither set)."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / CREDENTIALS_NAME
    home = env.get("HOME", "")
    if home:
        return Path(home) / ".config" / CREDENTIALS_NAME
    return None


def worker_key(url: str) -> str:
    """The key a Worker URL is stored under: scheme and host lower-cased, no trailing slash."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError("worker_url", f"{url!r} is not an http:// or https:// URL")
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def permission_problem(path: Path) -> str | None:
    """What is wrong with the file's mode (others may read it), or None."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if mode & 0o077:
        return f"{path} has mode {mode:04o}; others may read the tokens in it (chmod 600 {path})"
    return None


def _read(path: Path) -> dict[str, dict[str, object]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(str(path), f"not valid TOML: {exc}") from exc
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def load_credential(url: str, env: Mapping[str, str] | None = None) -> Credential | None:
    """The saved token for the Worker at ``url``, or None."""
    path = credentials_path(env)
    if path is None:
        return None
    entry = _read(path).get(worker_key(url))
    if entry is None or not isinstance(entry.get("token"), str) or not entry["token"]:
        return None
    problem = permission_problem(path)
    if problem:
        logger.warning("%s", problem)

    def text(key: str) -> str | None:
        value = entry.get(key)
        return value if isinstance(value, str) else None

    return Credential(
        url=worker_key(url),
        token=str(entry["token"]),
        project=text("project"),
        token_id=text("token_id"),
        saved_at=text("saved_at"),
    )


def _write(path: Path, data: Mapping[str, Mapping[str, object]]) -> None:
    """Write the whole file atomically, mode 0600, in a folder of mode 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lines = ["# Jetpack project tokens (jetpack edge login). Keep this file private."]
    for key, entry in data.items():
        lines.append("")
        lines.append(f"[{json.dumps(key)}]")
        for name, value in entry.items():
            if isinstance(value, str):
                lines.append(f"{name} = {json.dumps(value)}")
    fd, tmp = tempfile.mkstemp(prefix=".credentials-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_credential(credential: Credential, env: Mapping[str, str] | None = None) -> Path:
    """Store ``credential`` under its Worker URL (replacing an older one); return the file."""
    path = credentials_path(env)
    if path is None:
        raise ValidationError(
            "XDG_CONFIG_HOME", "neither it nor HOME is set: no place to keep the token"
        )
    data = _read(path)
    entry: dict[str, object] = {
        "token": credential.token,
        "project": credential.project,
        "token_id": credential.token_id,
        "saved_at": credential.saved_at or datetime.now(UTC).isoformat(timespec="seconds"),
    }
    data[worker_key(credential.url)] = {k: v for k, v in entry.items() if v is not None}
    _write(path, data)
    return path


def remove_credential(url: str, env: Mapping[str, str] | None = None) -> bool:
    """Forget the token of the Worker at ``url``; False when none was stored."""
    path = credentials_path(env)
    if path is None:
        return False
    data = _read(path)
    if data.pop(worker_key(url), None) is None:
        return False
    if data:
        _write(path, data)
    else:
        path.unlink(missing_ok=True)
    return True
