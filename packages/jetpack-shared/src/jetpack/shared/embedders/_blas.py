"""Run the local embedder's matrix products on one BLAS thread.

numpy's OpenBLAS keeps a pool of worker threads for large products. The local
embedder's products are small (a batch of at most a few thousand rows by 384
or 1,536 columns) and the pool does not pay for them (measured on a shared
2-core machine: 256 texts in 2.1-2.6 s on one thread, 5.5-7.9 s with the pool).
A busy pool is also a hazard for the process that hosts the embedder:
OpenBLAS's ``fork()`` handler waits for the pool to drain, so a ``fork()`` in
another thread during a forward pass could hang the whole process (the
``jetpack start`` deadlock), and a pool shut down mid-product leaves the
caller spinning. With one thread, OpenBLAS runs each product in the calling
thread and never hands work to the pool.

OpenBLAS's thread count is process-wide, so :func:`single_threaded_blas` sets
it to 1 while at least one forward pass runs (counted, so overlapping passes in
several threads keep it at 1) and restores the previous value after the last.
threadpoolctl finds the loaded BLAS libraries; OpenBLAS (pthreads) is then set
through its own C API, because threadpoolctl (3.8) lets only one Python thread
ever change OpenBLAS's limit and silently ignores the others, and the forward
passes run in whichever worker thread ``asyncio.to_thread`` picks.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import threading
from collections.abc import Callable, Iterator

from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

__all__ = ["single_threaded_blas"]

Knob = tuple[Callable[[], int], Callable[[int], object]]
"""How to read and set one library's thread count."""

_lock = threading.Lock()
_users = 0
_saved: list[int] = []


def _openblas_knob(filepath: str) -> Knob | None:
    """``openblas_get/set_num_threads`` of a loaded OpenBLAS (symbols may carry affixes)."""
    try:
        lib = ctypes.CDLL(filepath)
    except OSError:
        return None
    for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
        get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
        set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
        if get is not None and set_ is not None:
            set_.argtypes = [ctypes.c_int]
            return get, set_
    return None


@functools.cache
def _knobs() -> tuple[Knob, ...]:
    """The thread-count knobs of every BLAS library loaded (scanned once, a few ms)."""
    knobs: list[Knob] = []
    for lib in ThreadpoolController().lib_controllers:
        if lib.user_api != "blas":
            continue
        if lib.internal_api == "openblas" and lib.threading_layer != "openmp":
            knob = _openblas_knob(lib.filepath)
            if knob is not None:
                knobs.append(knob)
        else:  # MKL, BLIS, OpenMP builds: threadpoolctl sets them from any thread
            knobs.append((lib.get_num_threads, lib.set_num_threads))
    return tuple(knobs)


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS calls made inside the block (by any thread) use one thread."""
    global _users
    with _lock:
        if _users == 0:
            _saved[:] = [get() for get, _ in _knobs()]
            for _, set_ in _knobs():
                set_(1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                for (_, set_), count in zip(_knobs(), _saved, strict=True):
                    set_(count)
