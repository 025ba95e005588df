"""The memory store's part of the Jetpack Worker: its routes and Durable Objects.

A project's memories live in a Durable Object of its own (``MemoryDO``:
SQLite with FTS5 and the vectors). A deployed Worker also binds a Vectorize
index (``VECTORIZE``, 384 dimensions, cosine) and Workers AI (``AI``); a local
build (``BuildOptions(local=True)``, as ``jetpack edge dev`` and the test
fixture make) has neither and uses the built-in index.

Neither Vectorize nor Workers AI runs locally. A test build binds stand-ins
with their API, named as fakes, through the build feature ``memory_fakes``::

    BuildOptions(local=True, features={"memory_fakes": {"delay_ms": 1500}})

binds ``FAKE_VECTORIZE`` (a Vectorize index whose writes become visible only
``delay_ms`` after they are accepted, as Vectorize's do) and ``FAKE_AI``
(Workers AI's embedding API answering with hashed-word vectors). Keys:
``vectorize`` and ``ai`` (each True by default), ``delay_ms`` (2000),
``dimensions`` (384).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jetpack.shared.edge import DurableObjectBinding, EdgeModule, VectorizeBinding

__all__ = ["EDGE_MODULE", "FAKES_FEATURE", "VECTORIZE_INDEX"]

VECTORIZE_INDEX = VectorizeBinding("VECTORIZE", "jetpack-memory", dimensions=384, metric="cosine")
"""The deployed Worker's Vectorize index (the local MiniLM and bge-small both make 384-d)."""

FAKES_FEATURE = "memory_fakes"
"""The build feature that binds the Vectorize and Workers AI stand-ins (test builds only)."""


def _configure(config: dict[str, Any], features: Mapping[str, Any]) -> None:
    """Tell the module its Vectorize index; bind the stand-ins when a test build asks."""
    variables = config.setdefault("vars", {})
    variables["JETPACK_VECTORIZE_INDEX"] = VECTORIZE_INDEX.index_name
    variables["JETPACK_VECTORIZE_DIMENSIONS"] = str(VECTORIZE_INDEX.dimensions)
    wanted = features.get(FAKES_FEATURE)
    if not wanted:
        return
    if "vectorize" in config or "ai" in config:
        raise ValueError(f"{FAKES_FEATURE} is for local test builds (BuildOptions(local=True))")
    fakes: Mapping[str, Any] = wanted if isinstance(wanted, Mapping) else {}
    bindings = config.setdefault("durable_objects", {}).setdefault("bindings", [])
    classes = []
    if fakes.get("vectorize", True):
        bindings.append({"name": "FAKE_VECTORIZE", "class_name": "FakeVectorize"})
        classes.append("FakeVectorize")
        variables["FAKE_VECTORIZE_DELAY_MS"] = str(int(fakes.get("delay_ms", 2000)))
        variables["JETPACK_VECTORIZE_DIMENSIONS"] = str(int(fakes.get("dimensions", 384)))
    if fakes.get("ai", True):
        bindings.append({"name": "FAKE_AI", "class_name": "FakeWorkersAI"})
        classes.append("FakeWorkersAI")
    if classes:
        config.setdefault("migrations", []).append(
            {"tag": "memory-fakes-v1", "new_sqlite_classes": classes}
        )


EDGE_MODULE = EdgeModule(
    name="memory",
    package="jetpack.cf_cass",
    durable_objects=(DurableObjectBinding("MEMORY", "MemoryDO"),),
    durable_object_migrations=({"tag": "memory-v1", "new_sqlite_classes": ["MemoryDO"]},),
    vectorize=(VECTORIZE_INDEX,),
    ai_binding="AI",
    exports=("FakeVectorize", "FakeWorkersAI"),
    configure=_configure,
)
"""Registered under the ``jetpack.edge`` entry-point group as ``memory``."""
