from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest_asyncio

from jetpack.shared.testing.edge import EdgeProject, edge_project, edge_worker

__all__ = ["Cutter", "cutter", "edge_project", "edge_worker"]


class Cutter:
    """A TCP proxy in front of the Worker that a test can cut, or hold down.

    ``cut()`` aborts every open connection through it (what a flaky network
    does); ``down()`` also refuses new ones until ``up()``.
    """

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._down = False
        self.url = ""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        for task in (
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def cut(self) -> None:
        """Abort every connection through the proxy now."""
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    def down(self) -> None:
        """Cut, and refuse connections until :meth:`up`."""
        self._down = True
        self.cut()

    def up(self) -> None:
        self._down = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()


@pytest_asyncio.fixture
async def cutter(edge_project: EdgeProject) -> AsyncIterator[Cutter]:
    """A cuttable proxy to the shared Worker (``cutter.url`` in place of the Worker's URL)."""
    proxy = Cutter(edge_project.url)
    await proxy.start()
    yield proxy
    await proxy.close()
