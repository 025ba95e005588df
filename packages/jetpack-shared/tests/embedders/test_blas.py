"""The local embedder's forward pass runs on one BLAS thread, and gives the count back after."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController, threadpool_limits  # type: ignore[import-untyped]

import jetpack.shared.embedders._local as local
from jetpack.shared.embedders import LocalEmbedder
from jetpack.shared.embedders._blas import single_threaded_blas


def blas_threads() -> int:
    return int(
        min(i["num_threads"] for i in ThreadpoolController().info() if i["user_api"] == "blas")
    )


@pytest.fixture
def two_blas_threads() -> Iterator[None]:
    """A known starting point, whatever OPENBLAS_NUM_THREADS says."""
    with threadpool_limits(limits=2, user_api="blas"):
        yield


def test_one_thread_inside_the_block_and_back_after(two_blas_threads: None) -> None:
    assert blas_threads() == 2
    with single_threaded_blas():
        assert blas_threads() == 1
    assert blas_threads() == 2


def test_overlapping_blocks_keep_one_thread_until_the_last_ends(two_blas_threads: None) -> None:
    inside, release, seen = threading.Event(), threading.Event(), []

    def other() -> None:
        with single_threaded_blas():
            inside.set()
            release.wait(10)
            seen.append(blas_threads())

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(10)
    with single_threaded_blas():
        pass  # this block ends first: the other thread's pass must stay on one thread
    release.set()
    thread.join(10)
    assert seen == [1]
    assert blas_threads() == 2


def test_the_forward_pass_runs_single_threaded(
    two_blas_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    during: list[int] = []
    real = local.encode

    def watched(*args: Any) -> Any:
        during.append(blas_threads())
        return real(*args)

    monkeypatch.setattr(local, "encode", watched)
    embedder = LocalEmbedder(batch_size=2)
    vectors = embedder.embed_sync(["one", "two", "three"])
    assert vectors.shape == (3, 384) and np.isfinite(vectors).all()
    # and from a worker thread, as `embed` runs it
    worker = threading.Thread(target=embedder.embed_sync, args=(["four", "five", "six"],))
    worker.start()
    worker.join(60)
    assert during == [1, 1, 1, 1]
    assert blas_threads() == 2
