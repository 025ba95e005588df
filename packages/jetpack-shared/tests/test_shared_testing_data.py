"""The test data shipped in jetpack.shared.testing: found without a checkout, parsed, split.

That the wheel holds it is checked by tools/check.py (every source file ships).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jetpack.shared import MemoryEntry, MemoryType, testing
from jetpack.shared.errors import ValidationError
from jetpack.shared.testing import memory_eval_set, recall_at, sample_path


def test_samples_are_package_data() -> None:
    beads = sample_path("beads/issues.jsonl")
    assert beads.is_file() and beads.stat().st_size > 800_000
    assert beads.is_relative_to(Path(testing.__file__).parent / "data"), "package data"
    assert (beads.parent / "LICENSE").read_text().startswith("MIT License")
    assert sample_path("memory-eval/public.jsonl").is_file()


@pytest.mark.parametrize("name", ["nope.jsonl", "beads", "../_data.py", "/etc/passwd"])
def test_unknown_sample_is_refused_with_the_list(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        sample_path(name)
    assert caught.value.field == "name"
    assert "beads/issues.jsonl" in str(caught.value)


def test_the_eval_set_and_its_split() -> None:
    """120 memories, 40 queries (12 keyword); odd ids tune, even ids are held out."""
    data = memory_eval_set()
    assert len(data.memories) == 120 and len(data.queries) == 40
    assert {m["id"] for m in data.memories} >= {r for q in data.queries for r in q.relevant}
    assert all(set(m) == {"id", "type", "content", "importance"} for m in data.memories)
    tuning, held = data.tuning, data.held_out
    assert [q.id for q in tuning] == [f"q{i:02d}" for i in range(1, 41, 2)]
    assert [q.id for q in held] == [f"q{i:02d}" for i in range(2, 41, 2)]
    styles = [(q.style, q.held_out) for q in data.queries]
    assert (styles.count(("keyword", False)), styles.count(("keyword", True))) == (5, 7)
    assert (styles.count(("paraphrase", False)), styles.count(("paraphrase", True))) == (15, 13)


async def test_recall_at_counts_relevant_hits_per_query() -> None:
    data = memory_eval_set()
    queries = [q for q in data.queries if len(q.relevant) == 2][:2]
    first = {q.query: sorted(q.relevant)[0] for q in queries}

    async def half(query: str, k: int) -> Sequence[MemoryEntry]:
        now = datetime.now(UTC)
        entry = {"id": first[query], "type": MemoryType.AGENT_LEARNING, "content": "x"}
        return [MemoryEntry.model_validate({**entry, "created_at": now, "last_accessed": now})]

    assert await recall_at(half, queries) == 0.5
    with pytest.raises(ValidationError):
        await recall_at(half, [])
