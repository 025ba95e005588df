"""Run the local embedder's matrix products on one BLAS thread.

numpy's OpenBLAS keeps a pool of worker threads for large products. The local
embedder's products are small (a batch of at most a few thousand rows by 384
or 1,536 columns), the pool buys little for them (measured: no faster on 256
texts), and a busy pool is a hazard for the process that hosts the embedder:
OpenBLAS's ``fork()`` handler waits for the pool to drain, so a ``fork()`` in
another thread during a forward pass could hang the whole process (the
``jetpack start`` deadlock), and a pool shut down mid-product leaves the
caller spinning. With one thread, OpenBLAS runs each product in the calling
thread and never hands work to the pool.

OpenBLAS's thread count is process-wide, so :func:`single_threaded_blas` sets
it to 1 while at least one forward pass runs (counted, so overlapping passes in
several threads keep it at 1) and restores the previous value after the last.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any

from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

__all__ = ["single_threaded_blas"]

_lock = threading.Lock()
_users = 0
_limiter: Any = None


@functools.cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # scans the loaded libraries once (a few ms)


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS calls made inside the block (by any thread) use one thread."""
    global _users, _limiter
    with _lock:
        if _users == 0:
            _limiter = _controller().limit(limits=1, user_api="blas")
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _limiter = None
