"""BM25 search: identifiers, any text, FTS kept in step, the optional trigram index."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from jetpack.cass import CASSAdapter
from jetpack.cass._query import trigram_query, word_query

NOTES = [
    ("agent_learning", "Task bd-q3fy failed on a flaky network call"),
    ("test_failure_analysis", "test_claim_race fails under 4 processes"),
    ("codebase_knowledge", "Sessions live in src/auth/session.py next to tokens"),
    ("codebase_knowledge", "Login views live in src/auth/login.py; session cookies there"),
    ("successful_fix", "ECONNRESET from the proxy: retry with jittered back-off"),
    ("agent_learning", "The SessionManagerImpl class owns refresh tokens"),
    ("agent_learning", "設定ファイルは日本語で書かれています"),
    ("agent_learning", "Unrelated note about the weather and a bd task"),
]


async def _fill(store: CASSAdapter) -> dict[str, str]:
    ids = await store.store_many([{"type": t, "content": c} for t, c in NOTES])
    return dict(zip([c for _, c in NOTES], ids, strict=True))


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("bd-q3fy", "bd-q3fy"),
        ("q3fy", "bd-q3fy"),
        ("BD-Q3FY", "bd-q3fy"),
        ("test_claim_race", "test_claim_race"),
        ("claim_race", "test_claim_race"),
        ("src/auth/session.py", "src/auth/session.py"),
        ("session.py", "src/auth/session.py"),
        ("ECONNRESET", "ECONNRESET"),
        ("why did bd-q3fy fail?", "bd-q3fy"),
        ("retries", "retry"),  # stemmed
    ],
)
async def test_identifiers_and_words_rank_first(
    store: CASSAdapter, query: str, needle: str
) -> None:
    await _fill(store)
    hits = await store.search(query, limit=3)
    assert hits and needle in hits[0].content
    assert hits[0].score is not None and hits[0].score > 0


async def test_identifier_is_a_phrase_not_loose_words(store: CASSAdapter) -> None:
    """src/auth/session.py does not match a note that merely has 'session' and 'src/auth'."""
    await _fill(store)
    hits = await store.search("src/auth/session.py", limit=10)
    assert [h.content for h in hits if "login.py" in h.content] == []


def test_queries_are_quoted() -> None:
    assert word_query('fix AND "x" -y a:b NEAR(') == '"fix" OR "x" OR "y" OR "a b" OR "near"'
    assert word_query("the of") == '"the" OR "of"'  # only stopwords: keep them
    assert word_query("the cache") == '"cache"'
    assert word_query('" - ( * ') is None
    assert trigram_query('ab say"hi') == '"say""hi"'


async def test_any_text_is_safe(store: CASSAdapter) -> None:
    """Random strings of FTS5 operators, quotes, unicode and control characters never raise."""
    await _fill(store)
    symbols = "\"'-:*^()[]{}+,.;/\\_ \t\nANDORNOTNEARxyzé日本語\u200b\x00%"
    alphabet = [*symbols, "AND", "NEAR/2"]
    rng = random.Random(42)
    for _ in range(300):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert isinstance(await store.search(query), list)
        assert isinstance(await store.hybrid_search(query), list)
    assert (await store.get_stats()).total == len(NOTES)


async def test_fts_follows_deletes_compaction_and_eviction(db_path: Path) -> None:
    async with CASSAdapter(db_path, embedder=None, max_entries=3) as store:
        gone = await store.store(
            {"type": "agent_learning", "content": "zebra one", "importance": 0}
        )
        assert [h.id for h in await store.search("zebra")] == [gone]
        assert await store.delete(gone)
        assert await store.search("zebra") == []
        low = await store.store({"type": "agent_learning", "content": "okapi", "importance": 0.1})
        assert await store.compact(0.5) == 1
        assert await store.search("okapi") == [] and await store.retrieve(low) is None
        await store.store_many(
            [{"type": "agent_learning", "content": f"lynx {i}", "importance": 0} for i in range(5)]
        )
        hits = await store.search("lynx", limit=10)
        assert len(hits) == (await store.get_stats()).total <= 3


async def test_words_do_not_find_substrings_without_trigram(store: CASSAdapter) -> None:
    await _fill(store)
    assert await store.search("SessionMan") == []
    assert await store.search("日本語") == []


async def test_substring_search_fills_in(db_path: Path) -> None:
    async with CASSAdapter(db_path, embedder=None, substring_search=True) as store:
        ids = await _fill(store)
        hits = await store.search("SessionMan")
        assert [h.id for h in hits] == [ids["The SessionManagerImpl class owns refresh tokens"]]
        assert [h.content for h in await store.search("日本語")] == [NOTES[6][1]]
        # word hits stay first; substring hits come after with lower scores
        mixed = await store.search("cookies SessionMan", limit=5)
        assert "cookies" in mixed[0].content and "SessionManagerImpl" in mixed[1].content
        assert mixed[0].score is not None and mixed[1].score is not None
        assert mixed[0].score > mixed[1].score
        assert await store.delete(ids["The SessionManagerImpl class owns refresh tokens"])
        assert await store.search("SessionMan") == []


async def test_trigram_index_is_built_for_an_existing_file(db_path: Path) -> None:
    async with CASSAdapter(db_path, embedder=None) as store:
        await _fill(store)
    async with CASSAdapter(db_path, embedder=None, substring_search=True) as store:
        assert len(await store.search("SessionMan")) == 1
    async with CASSAdapter(db_path, embedder=None) as store:  # kept by every writer
        await store.store({"type": "agent_learning", "content": "ConnectionPoolExecutor"})
    async with CASSAdapter(db_path, embedder=None, substring_search=True) as store:
        assert len(await store.search("PoolExec")) == 1


async def test_search_limits_are_checked(store: CASSAdapter) -> None:
    from jetpack.shared.errors import ValidationError

    for bad in (0, -1, 10_001, True, 2.5):
        with pytest.raises(ValidationError) as info:
            await store.search("x", limit=bad)  # type: ignore[arg-type]
        assert info.value.field == "limit"
    with pytest.raises(ValidationError) as info:
        await store.search(None)  # type: ignore[arg-type]
    assert info.value.field == "query"
