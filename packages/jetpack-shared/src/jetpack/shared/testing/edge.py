"""A real Jetpack Worker on workerd for tests: one per test session, a fresh project per test.

In a backend's ``conftest.py``::

    from jetpack.shared.testing.edge import edge_project, edge_worker  # noqa: F401

``edge_worker`` builds the Worker from the installed cf packages (the
``jetpack.edge`` entry points), starts it with ``wrangler dev`` on a fresh
persist folder and yields an :class:`EdgeWorker`; every test module of the
session shares that one process. ``edge_project`` gives each test a new
project and its token, which isolates tests without a restart. The Worker
stops when the session's Python process exits, however it exits.

:class:`EdgeWorker` can also start private Workers (another build, e.g. a low
rate limit, or a restart on the same state) with :meth:`EdgeWorker.start`.
"""

from __future__ import annotations

import atexit
import json
import secrets
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from jetpack.shared.edge import (
    BuildOptions,
    DevServer,
    EdgeModule,
    Toolchain,
    build_worker,
    ensure_toolchain,
)

__all__ = ["EdgeProject", "EdgeWorker", "edge_project", "edge_worker"]


@dataclass(frozen=True, slots=True)
class EdgeProject:
    """A project on a running Worker, with a project token (``token``)."""

    url: str
    project: str
    token: str
    token_id: str

    def __repr__(self) -> str:
        return f"EdgeProject({self.url!r}, {self.project!r})"


class EdgeWorker:
    """A Worker running on workerd, with its admin token, for tests."""

    def __init__(self, server: DevServer, root: Path) -> None:
        self.server = server
        self.root = root

    def __repr__(self) -> str:
        return f"EdgeWorker({self.url!r})"

    @property
    def url(self) -> str:
        """Base URL on loopback."""
        return self.server.url

    @property
    def admin_token(self) -> str:
        """The Worker's admin secret."""
        return self.server.admin_token

    @classmethod
    def start(
        cls,
        root: Path,
        options: BuildOptions | None = None,
        *,
        toolchain: Toolchain | None = None,
        persist_to: Path | None = None,
        admin_token: str | None = None,
        modules: Sequence[EdgeModule] | None = None,
    ) -> EdgeWorker:
        """Build into ``root/worker`` and serve it (state: ``persist_to``, else ``root/state``).

        ``modules`` defaults to every installed cf package's module. The build is
        a local one (``BuildOptions.local``): no Vectorize or Workers AI binding.
        """
        toolchain = toolchain or ensure_toolchain()
        # A local build, as `jetpack edge dev` runs it (by default also without traces).
        options = replace(options or BuildOptions(observability=False), local=True)
        build = build_worker(root / "worker", options, modules=modules, toolchain=toolchain)
        server = DevServer(
            build,
            toolchain,
            persist_to=persist_to or root / "state",
            admin_token=admin_token or "jpa_" + secrets.token_urlsafe(24),
        )
        server.start()
        return cls(server, root)

    def stop(self) -> None:
        """Stop the Worker (its state stays in the persist folder)."""
        self.server.stop()

    def restart(self) -> None:
        """Stop and start again on the same state and port."""
        self.server.stop()
        self.server.start()

    def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, Any]:
        """One raw request (admin token by default): ``(status, parsed JSON or None)``.

        A 429 is waited out (``Retry-After``) up to three times, so a Worker
        built with a low rate limit does not throttle the test's own set-up.
        """
        data = None if body is None else json.dumps(body).encode()
        for _ in range(4):
            request = urllib.request.Request(
                self.url + path,
                data=data,
                method=method,
                headers={
                    "Authorization": f"Bearer {token or self.admin_token}",
                    "Content-Type": "application/json",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    status, raw = answer.status, answer.read()
            except urllib.error.HTTPError as exc:
                status, raw = exc.code, exc.read()
                if status == 429:
                    time.sleep(float(exc.headers.get("Retry-After") or 1))
                    continue
            break
        return status, (json.loads(raw) if raw else None)

    def new_project(self, name: str | None = None, *, agent_id: str | None = None) -> EdgeProject:
        """Mint a token for a new (or the named) project."""
        project = name or f"test-{secrets.token_hex(6)}"
        body: dict[str, Any] = {"project": project}
        if agent_id is not None:
            body["agent_id"] = agent_id
        status, answer = self.call("POST", "/api/admin/tokens", body)
        if status != 201:
            raise RuntimeError(f"minting a token failed: {status} {answer}")
        return EdgeProject(self.url, project, answer["token"], answer["id"])


_shared: EdgeWorker | None = None
_shared_lock = threading.Lock()


def shared_worker() -> EdgeWorker:
    """The session's Worker, started on first use, stopped when this process exits."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.server.running:
            root = Path(tempfile.mkdtemp(prefix="jetpack-edge-"))
            worker = EdgeWorker.start(root)
            _shared = worker

            def cleanup() -> None:
                worker.stop()
                shutil.rmtree(root, ignore_errors=True)

            atexit.register(cleanup)
        return _shared


@pytest.fixture(scope="session")
def edge_worker() -> EdgeWorker:
    """The Worker shared by every test of the session (built from the installed cf packages)."""
    return shared_worker()


@pytest.fixture
def edge_project(edge_worker: EdgeWorker) -> EdgeProject:
    """A fresh project on the shared Worker, with its project token."""
    return edge_worker.new_project()
