"""Benchmark the local memory store (jetpack-cass CASSAdapter).

Run from the workspace env::

    hatch run python bench/memory.py                       # 10,000 and 100,000 memories
    hatch run python bench/memory.py --sizes 10000 --json  # one size, machine-readable

For each size it builds a store of synthetic memories (Zipf-distributed words
plus identifiers such as ``bd-3kq9``, ``src/mod17/file4.py``, ``test_case_88``)
with 384-dim vectors supplied by the caller, then measures:

- store/s: single ``store`` calls and ``store_many`` batches of 1,000, with and
  without vectors (no embedding: vectors are supplied or absent);
- ``search``, ``semantic_search`` and ``hybrid_search`` p50/p95 over the same
  queries, plus, in the same run, the raw equivalents: the same FTS5 MATCH
  (same expression, same join for the rows) through plain ``sqlite3``, and the
  same brute-force cosine top-k in numpy over a preloaded matrix; the ratio is
  store time ÷ raw time;
- the first semantic search after opening (full matrix load) and the first after
  one more ``store`` (incremental refresh).

``hybrid_search`` needs an embedder for the query; the benchmark gives it one
that returns a fixed random vector per query, so the figure is the store's own
cost. The model's cost is measured separately: load time and texts/s of the
local default embedder. Finally recall@5 per query style on the memory-eval set
shipped with the kit (``jetpack.shared.testing.memory_eval_set()``) for each
search mode, without an embedder and with the local default, on the held-out
queries (even ids, never used to tune the hybrid fusion; ``bench/fusion.py``
tunes it on the odd ids) and on all 40.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jetpack.cass import CASSAdapter
from jetpack.cass._query import word_query
from jetpack.shared import MemoryType
from jetpack.shared.testing import memory_eval_set, recall_at

DIMS = 384
TYPES = [t.value for t in MemoryType]


class FixedEmbedder:
    """Returns a deterministic random unit vector per text (no model cost)."""

    name = "bench-fixed-384"
    dimensions = DIMS

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            rng = np.random.default_rng(abs(hash(text)) % (2**32))
            v = rng.standard_normal(DIMS).astype(np.float32)
            out.append((v / np.linalg.norm(v)).tolist())
        return out

    async def aclose(self) -> None:
        return None


def vocabulary(n: int = 6000, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 10))))
    return sorted(words)


def make_corpus(n: int, seed: int = 2) -> tuple[list[dict[str, Any]], list[str]]:
    rng = random.Random(seed)
    vocab = vocabulary()
    weights = [1 / (i + 1) for i in range(len(vocab))]
    out = []
    for i in range(n):
        words = rng.choices(vocab, weights=weights, k=rng.randint(12, 40))
        ident = rng.choice(
            [f"bd-{i:x}q", f"src/mod{i % 97}/file{i}.py", f"test_case_{i}", f"ERR_{i}_X"]
        )
        words.insert(rng.randrange(len(words)), ident)
        out.append(
            {
                "type": rng.choice(TYPES),
                "content": " ".join(words),
                "importance": round(rng.random(), 3),
            }
        )
    return out, vocab


def unit_vectors(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, DIMS)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def queries(corpus: list[dict[str, Any]], vocab: list[str], n: int = 200) -> list[str]:
    rng = random.Random(5)
    out = []
    for i in range(n):
        if i % 4 == 0:  # an identifier from a stored memory
            content = corpus[rng.randrange(len(corpus))]["content"]
            idents = [w for w in content.split() if any(c in w for c in "-_/")]
            out.append(idents[0] if idents else content.split()[0])
        else:  # two or three mid-frequency words
            out.append(" ".join(rng.choice(vocab[50:3000]) for _ in range(rng.randint(2, 3))))
    return out


async def timed(fn: Callable[[Any], Awaitable[Any]], items: Sequence[Any]) -> list[float]:
    out = []
    for item in items:
        t = time.perf_counter()
        await fn(item)
        out.append((time.perf_counter() - t) * 1000)
    return out


def timed_sync(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[float]:
    out = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def bench_size(n: int, workdir: Path) -> dict[str, Any]:
    corpus, vocab = make_corpus(n)
    vectors = unit_vectors(n)
    db = workdir / f"mem-{n}.db"
    res: dict[str, Any] = {"memories": n}
    batch = 1000

    # batched store, no vectors (separate file)
    plain = workdir / f"plain-{n}.db"
    async with CASSAdapter(plain, embedder=None, max_entries=n + 10_000) as store:
        t = time.perf_counter()
        for s in range(0, n, batch):
            await store.store_many(corpus[s : s + batch])
        res["store_many_per_s_no_vectors"] = n / (time.perf_counter() - t)

    async with CASSAdapter(db, embedder=None, max_entries=n + 10_000) as store:
        t = time.perf_counter()
        for s in range(0, n, batch):
            chunk = [
                {**m, "embedding": vectors[s + i].tolist()}
                for i, m in enumerate(corpus[s : s + batch])
            ]
            await store.store_many(chunk)
        res["store_many_per_s_with_vectors"] = n / (time.perf_counter() - t)

        singles = 300
        extra, _ = make_corpus(singles, seed=9)
        ev = unit_vectors(singles, seed=9)
        t = time.perf_counter()
        for i, m in enumerate(extra):
            await store.store({**m, "embedding": ev[i].tolist()})
        res["store_single_per_s_with_vectors"] = singles / (time.perf_counter() - t)

    qs = queries(corpus, vocab)
    qvecs = unit_vectors(100, seed=11)
    async with CASSAdapter(db, embedder=None, max_entries=n + 10_000) as store:
        t = time.perf_counter()
        await store.semantic_search(qvecs[0].tolist(), 10)
        res["semantic_first_ms_full_load"] = (time.perf_counter() - t) * 1000
        search_ms = await timed(lambda q: store.search(q, 10), qs)
        sem_ms = await timed(lambda v: store.semantic_search(v.tolist(), 10), list(qvecs))
        await store.store({**corpus[0], "embedding": qvecs[0].tolist()})
        t = time.perf_counter()
        await store.semantic_search(qvecs[1].tolist(), 10)
        res["semantic_after_store_ms_incremental"] = (time.perf_counter() - t) * 1000
        res["matrix_full_loads"] = store.matrix_loads
    async with CASSAdapter(db, embedder=FixedEmbedder(), max_entries=n + 10_000) as store:
        await store.hybrid_search(qs[0], 10)
        hybrid_ms = await timed(lambda q: store.hybrid_search(q, 10), qs)

    # raw equivalents in the same run
    conn = sqlite3.connect(db)
    exprs = [word_query(q) for q in qs]

    def raw_fts(expr: str | None) -> list[Any]:
        if expr is None:
            return []
        return conn.execute(
            "SELECT m.id, m.type, m.content, m.importance, m.metadata, f.score FROM "
            "(SELECT rowid AS seq, bm25(memories_fts) AS score FROM memories_fts "
            "WHERE memories_fts MATCH ? ORDER BY rank LIMIT 10) f "
            "JOIN memories m ON m.seq = f.seq",
            (expr,),
        ).fetchall()

    raw_fts_ms = timed_sync(raw_fts, exprs)
    seqs = np.array([r[0] for r in conn.execute("SELECT seq FROM memory_vectors")])
    blobs = b"".join(r[0] for r in conn.execute("SELECT vector FROM memory_vectors"))
    matrix = np.frombuffer(blobs, dtype="<f4").reshape(len(seqs), DIMS)
    matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    conn.close()

    def raw_cosine(q: np.ndarray) -> Any:
        scores = matrix @ (q / np.linalg.norm(q))
        top = np.argpartition(-scores, 9)[:10]
        return seqs[top[np.argsort(-scores[top])]]

    raw_cos_ms = timed_sync(raw_cosine, list(qvecs))
    for name, values in [
        ("search", search_ms),
        ("semantic_search", sem_ms),
        ("hybrid_search", hybrid_ms),
        ("raw_fts5", raw_fts_ms),
        ("raw_numpy_cosine", raw_cos_ms),
    ]:
        res[f"{name}_p50_ms"] = pct(values, 50)
        res[f"{name}_p95_ms"] = pct(values, 95)
    res["search_vs_raw_fts5"] = res["search_p50_ms"] / res["raw_fts5_p50_ms"]
    res["semantic_vs_raw_numpy"] = res["semantic_search_p50_ms"] / res["raw_numpy_cosine_p50_ms"]
    res["db_mb"] = db.stat().st_size / 1e6
    return res


async def bench_eval(workdir: Path) -> dict[str, Any]:
    data = memory_eval_set()
    mems = data.memories
    out: dict[str, Any] = {}
    for label in ("none", "default"):
        async with CASSAdapter(
            workdir / f"eval-{label}.db", embedder=None if label == "none" else "default"
        ) as store:
            if label == "default":
                assert store.embedder is not None
                t = time.perf_counter()
                await store.embedder.embed(["warm up"])
                out["local_embedder_load_s"] = time.perf_counter() - t
                t = time.perf_counter()
                await store.embedder.embed([m["content"] for m in mems])
                out["local_embedder_texts_per_s"] = len(mems) / (time.perf_counter() - t)
            await store.store_many(mems)
            for mode in ("search", "semantic_search_by_query", "hybrid_search"):
                for split, queries in (("held-out", data.held_out), ("all", data.queries)):
                    for style in ("keyword", "paraphrase"):
                        part = [q for q in queries if q.style == style]
                        key = f"recall@5 {label:7} {mode:24} {split:8} {style}"
                        out[key] = await recall_at(getattr(store, mode), part)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-eval", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {"sizes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            report["sizes"].append(await bench_size(n, Path(tmp)))
        if not args.no_eval:
            report["eval"] = await bench_eval(Path(tmp))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for res in report["sizes"]:
        print(f"\n== {res['memories']:,} memories ({DIMS}-dim vectors supplied) ==")
        for key, value in res.items():
            if key != "memories":
                print(f"  {key:40} {value:12.2f}")
    for key, value in report.get("eval", {}).items():
        print(f"  {key:56} {value:8.3f}")


if __name__ == "__main__":
    asyncio.run(main())
