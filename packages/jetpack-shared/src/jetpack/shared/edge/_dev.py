"""Run a built Worker on workerd (``wrangler dev``, local mode) and stop it cleanly.

:class:`DevServer` applies the pending D1 migrations to the persist folder,
starts ``wrangler dev`` under :mod:`jetpack.shared.edge._supervise` (so every
child dies with it, even if this process is killed), and returns once
``GET /api/health`` answers. State lives in ``persist_to`` and survives
restarts. Also here: the admin token of a local Worker
(:func:`local_admin_token`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from jetpack.shared.edge._build import WorkerBuild
from jetpack.shared.edge._toolchain import Toolchain, ToolchainError

__all__ = [
    "ADMIN_TOKEN_ENV",
    "DevServer",
    "apply_migrations",
    "free_port",
    "local_admin_token",
]

logger = logging.getLogger(__name__)

ADMIN_TOKEN_ENV = "JETPACK_ADMIN_TOKEN"
"""The Worker secret (and local environment variable) holding the admin token."""


def local_admin_token(state_dir: Path, env: dict[str, str] | None = None) -> str:
    """The admin token of a local Worker: ``$JETPACK_ADMIN_TOKEN``, else ``state_dir/admin-token``.

    The file is created on first use with a random token, mode 0600.
    """
    env = dict(os.environ) if env is None else env
    if env.get(ADMIN_TOKEN_ENV):
        return env[ADMIN_TOKEN_ENV]
    path = state_dir / "admin-token"
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    state_dir.mkdir(parents=True, exist_ok=True)
    token = "jpa_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def apply_migrations(build: WorkerBuild, toolchain: Toolchain, persist_to: Path) -> str:
    """Apply the build's pending D1 migrations to the local state in ``persist_to``."""
    result = subprocess.run(
        toolchain.wrangler(
            "d1", "migrations", "apply", "DB", "--local", "--persist-to", str(persist_to)
        ),
        cwd=build.root,
        env=toolchain.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise ToolchainError(f"wrangler d1 migrations apply failed:\n{output[-4000:]}")
    return output


class DevServer:
    """A Worker served by ``wrangler dev`` on workerd, on loopback.

    Args:
        build: the Worker folder (:func:`~jetpack.shared.edge.build_worker`).
        toolchain: the installed npm toolchain.
        persist_to: where D1 and Durable Object state lives (kept across runs).
        admin_token: the admin secret the Worker checks.
        port: the port (0: a free one).
        log_path: where wrangler's output goes (default: ``persist_to/wrangler.log``).
    """

    def __init__(
        self,
        build: WorkerBuild,
        toolchain: Toolchain,
        *,
        persist_to: Path,
        admin_token: str,
        port: int = 0,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
    ) -> None:
        self.build = build
        self.toolchain = toolchain
        self.persist_to = Path(persist_to).resolve()
        self.admin_token = admin_token
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path or self.persist_to / "wrangler.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"DevServer({self.url!r}, persist_to={str(self.persist_to)!r})"

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8787``."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the supervisor while it runs (wrangler and workerd are below it)."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """True while the supervised wrangler runs."""
        return self._proc is not None and self._proc.poll() is None

    def _write_dev_vars(self) -> None:
        path = self.build.root / ".dev.vars"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{ADMIN_TOKEN_ENV}={json.dumps(self.admin_token)}\n")

    def start(self, timeout: float = 180.0) -> str:
        """Migrate, start, and wait until ``/api/health`` answers; return the URL."""
        if self.running:
            return self.url
        self.persist_to.mkdir(parents=True, exist_ok=True)
        self._write_dev_vars()
        apply_migrations(self.build, self.toolchain, self.persist_to)
        cmd = self.toolchain.wrangler(
            "dev",
            "--local",
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--inspector-port",
            str(free_port(self.host)),
            "--persist-to",
            str(self.persist_to),
            "--show-interactive-dev-session=false",
            "--live-reload=false",
            "--log-level=warn",
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "jetpack.shared.edge._supervise", "--", *cmd],
            cwd=self.build.root,
            env=self.toolchain.env(),
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        logger.info("Worker ready on %s (state in %s)", self.url, self.persist_to)
        return self.url

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None or self._proc.poll() is not None:
                raise ToolchainError(f"wrangler dev exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/health", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise ToolchainError(
                    f"wrangler dev did not answer within {timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines wrangler printed."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        """Stop wrangler and workerd (every process of the group); idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()  # the supervisor ends the whole group
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def wait(self) -> int:
        """Block until the server exits by itself; its exit code."""
        if self._proc is None:
            return 0
        return self._proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
