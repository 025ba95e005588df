"""The test data shipped in ``jetpack.shared.testing``'s ``data`` folder (see its README)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from jetpack.shared import MemoryEntry
from jetpack.shared.errors import ValidationError

__all__ = ["EvalQuery", "MemoryEvalSet", "memory_eval_set", "recall_at", "sample_path"]


def sample_path(name: str) -> Path:
    """The path of a shipped data file, ``name`` relative to the data folder.

    ``sample_path("beads/issues.jsonl")``; an unknown name is
    ``ValidationError('name')`` listing what is there.
    """
    root = Path(str(files("jetpack.shared.testing").joinpath("data"))).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        shipped = sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and p.suffix != ".md" and p.name != "LICENSE"
        )
        raise ValidationError("name", f"{name!r} is not a shipped sample; there are {shipped}")
    return path


@dataclass(frozen=True)
class EvalQuery:
    """One query of the memory-eval set and the ids of the memories it should find."""

    id: str
    query: str
    relevant: frozenset[str]
    style: str
    """``keyword`` (contains an exact identifier) or ``paraphrase``."""

    @property
    def held_out(self) -> bool:
        """True for even-numbered queries (``q02``, ``q04``…): never used for tuning."""
        return int(self.id.lstrip("q")) % 2 == 0


@dataclass(frozen=True)
class MemoryEvalSet:
    """``memory-eval/public.jsonl``: memories to store, queries to ask."""

    memories: list[dict[str, Any]]
    """Ready for ``store_many``: ``id``, ``type``, ``content``, ``importance``."""
    queries: list[EvalQuery] = field(default_factory=list)

    @property
    def tuning(self) -> list[EvalQuery]:
        """The odd-numbered queries: the part search settings may be tuned on."""
        return [q for q in self.queries if not q.held_out]

    @property
    def held_out(self) -> list[EvalQuery]:
        """The even-numbered queries: the part quality figures are reported on."""
        return [q for q in self.queries if q.held_out]


def memory_eval_set() -> MemoryEvalSet:
    """Parse the memory-eval set (120 memories, 40 queries)."""
    text = sample_path("memory-eval/public.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    memories = [{k: v for k, v in r.items() if k != "kind"} for r in rows if r["kind"] == "memory"]
    queries = [
        EvalQuery(r["id"], r["query"], frozenset(r["relevant"]), r["style"])
        for r in rows
        if r["kind"] == "query"
    ]
    return MemoryEvalSet(memories, queries)


async def recall_at(
    search: Callable[[str, int], Awaitable[Sequence[MemoryEntry]]],
    queries: Sequence[EvalQuery],
    k: int = 5,
) -> float:
    """Recall@k: the share of each query's relevant ids in ``search(query, k)``, averaged."""
    if not queries:
        raise ValidationError("queries", "must not be empty")
    scores = []
    for query in queries:
        found = {hit.id for hit in await search(query.query, k)} & query.relevant
        scores.append(len(found) / len(query.relevant))
    return statistics.mean(scores)
