"""Tune and check the hybrid fusion of the memory store on the memory-eval set.

Run from the workspace env::

    hatch run python bench/fusion.py           # the table, the choice, held-out figures
    hatch run python bench/fusion.py --json

It stores the memory-eval set (``jetpack.shared.testing.memory_eval_set()``) in a
jetpack-cass store with the local default embedder, then takes, for every query,
the BM25 list (``search``, 50 deep, scores = negated FTS5 bm25) and the vector
list (``semantic_search``, 50 deep, scores = cosine) that ``hybrid_search`` fuses.
Each candidate fusion is scored on the *tuning* queries (odd ids) only:

1. its recall@5 must reach, per query style, the better of BM25 alone and vectors
   alone on the tuning queries;
2. among those, the highest mean reciprocal rank (over each relevant memory, first
   10 ranks) summed over both styles wins: recall@5 on 20 queries ties too often.

The winner's recall@5 is then reported on the *held-out* queries (even ids), which
took no part in the choice. A stress column repeats the keyword queries with the
relevant memories missing from the vector list (stored without a vector, or missed
by the embedding): exact identifiers must still be found.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jetpack.cass import CASSAdapter
from jetpack.shared.rules import HYBRID_TEXT_WEIGHT, fuse_hybrid
from jetpack.shared.testing import EvalQuery, memory_eval_set

DEPTH = 50
Ranked = list[tuple[str, float]]
Fusion = Callable[[Ranked, Ranked], Ranked]


def rrf(text_weight: float, k: int) -> Fusion:
    """Weighted reciprocal rank fusion (the old default: text_weight 1, k 60)."""

    def fuse(text: Ranked, semantic: Ranked) -> Ranked:
        scores: dict[str, float] = {}
        for weight, ranked in ((text_weight, text), (1.0, semantic)):
            for rank, (key, _) in enumerate(ranked, start=1):
                scores[key] = scores.get(key, 0.0) + weight / (k + rank)
        return sorted(scores.items(), key=lambda kv: -kv[1])

    return fuse


def hybrid(text_weight: float) -> Fusion:
    return lambda text, semantic: fuse_hybrid(text, semantic, text_weight=text_weight)


def candidates() -> dict[str, Fusion]:
    out: dict[str, Fusion] = {
        "bm25 alone": lambda text, semantic: text,
        "vectors alone": lambda text, semantic: semantic,
    }
    for k in (10, 60):
        for weight in (1.0, 0.5, 0.2):
            out[f"rrf k={k} text×{weight}"] = rrf(weight, k)
    for step in range(1, 11):
        out[f"fuse_hybrid text_weight={step * 0.05:.2f}"] = hybrid(step * 0.05)
    return out


def scores(order: Sequence[str], relevant: frozenset[str]) -> tuple[float, float]:
    """recall@5 and mean reciprocal rank (first 10) of the relevant memories."""
    ranks = {key: i for i, key in enumerate(order[:10], start=1)}
    recall = len(relevant & set(order[:5])) / len(relevant)
    mrr = statistics.mean(1 / ranks[r] if r in ranks else 0.0 for r in relevant)
    return recall, mrr


def evaluate(
    fusion: Fusion, lists: dict[str, tuple[Ranked, Ranked]], queries: list[EvalQuery]
) -> dict[str, tuple[float, float]]:
    out = {}
    for style in ("keyword", "paraphrase"):
        rows = [
            scores([k for k, _ in fusion(*lists[q.id])], q.relevant)
            for q in queries
            if q.style == style
        ]
        if rows:
            out[style] = (statistics.mean(r for r, _ in rows), statistics.mean(m for _, m in rows))
    return out


async def collect() -> tuple[dict[str, tuple[Ranked, Ranked]], list[EvalQuery], list[EvalQuery]]:
    data = memory_eval_set()
    lists: dict[str, tuple[Ranked, Ranked]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with CASSAdapter(Path(tmp) / "eval.db", embedder="default") as store:
            assert store.embedder is not None
            await store.store_many(data.memories)
            for q in data.queries:
                text = [(h.id, float(h.score or 0.0)) for h in await store.search(q.query, DEPTH)]
                (vector,) = await store.embedder.embed([q.query])
                semantic = await store.semantic_search(vector, DEPTH)
                lists[q.id] = (text, [(h.id, float(h.score or 0.0)) for h in semantic])
    return lists, data.tuning, data.held_out


def choose(table: dict[str, dict[str, Any]]) -> str:
    """The tuning protocol of the module docstring."""
    bar = {
        style: max(table[name]["tuning"][style][0] for name in ("bm25 alone", "vectors alone"))
        for style in ("keyword", "paraphrase")
    }
    eligible = [
        name
        for name, row in table.items()
        if "alone" not in name
        and all(row["tuning"][s][0] >= bar[s] - 1e-9 for s in ("keyword", "paraphrase"))
    ]
    return max(eligible, key=lambda n: sum(m for _, m in table[n]["tuning"].values()))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    lists, tuning, held_out = await collect()
    stressed = {
        q.id: (lists[q.id][0], [(k, s) for k, s in lists[q.id][1] if k not in q.relevant])
        for q in tuning + held_out
    }
    keyword = [q for q in tuning + held_out if q.style == "keyword"]
    table: dict[str, dict[str, Any]] = {}
    for name, fusion in candidates().items():
        table[name] = {
            "tuning": evaluate(fusion, lists, tuning),
            "held_out": evaluate(fusion, lists, held_out),
            "all": evaluate(fusion, lists, tuning + held_out),
            "keyword_without_vectors": evaluate(fusion, stressed, keyword)["keyword"][0],
        }
    chosen = choose(table)
    if args.json:
        print(json.dumps({"chosen": chosen, "table": table}, indent=2))
        return
    print("recall@5 (mrr@10) per style; keyword / paraphrase")
    header = f"{'fusion':34} {'tuning':27} {'held out':27} {'all':13} {'no-vector kw':>12}"
    print(header)
    for name, row in table.items():
        cells = [
            " / ".join(f"{r:.2f} ({m:.2f})" for r, m in row[part].values())
            for part in ("tuning", "held_out")
        ]
        whole = " / ".join(f"{r:.2f}" for r, _ in row["all"].values())
        mark = " <- chosen" if name == chosen else ""
        print(
            f"{name:34} {cells[0]:27} {cells[1]:27} {whole:13} "
            f"{row['keyword_without_vectors']:12.2f}{mark}"
        )
    default = f"fuse_hybrid text_weight={HYBRID_TEXT_WEIGHT:.2f}"
    held = table[default]["held_out"]
    print(
        f"\nthe store's default, {default}: held-out recall@5 keyword "
        f"{held['keyword'][0]:.3f}, paraphrase {held['paraphrase'][0]:.3f}"
        + ("" if chosen == default else f"; the protocol now chooses {chosen}")
    )


if __name__ == "__main__":
    asyncio.run(main())
