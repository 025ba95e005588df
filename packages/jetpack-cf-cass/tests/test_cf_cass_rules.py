"""Same rule, same answers: the Worker's port of two shared rules (worker/rules.ts), run in
Node, against jetpack.shared.rules on the same inputs: the safe FTS5 query of any text
(fts_word_query) and the retention score that orders evictions (retention_score)."""

from __future__ import annotations

import json
import random
import subprocess
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jetpack.cf_cass import EDGE_MODULE
from jetpack.shared.edge import Toolchain, ensure_toolchain
from jetpack.shared.rules import fts_word_query, retention_score

DRIVER = """\
import { readFileSync, writeFileSync } from "node:fs";
import { retentionScore, wordQuery } from "./rules.mts";
const input = JSON.parse(readFileSync(process.argv[2], "utf8"));
writeFileSync(process.argv[3], JSON.stringify({
  queries: input.queries.map((q) => wordQuery(q)),
  scores: input.scores.map(([i, last, n, now]) => retentionScore(i, last, n, now)),
}));
"""

HOSTILE = [
    "",
    "   ",
    '"',
    "-",
    "a:b",
    "AND",
    "fix AND",
    "(",
    "*",
    "NEAR(",
    "NEAR(a b, 3)",
    "'; DROP TABLE memories; --",
    "bd-q3fy",
    "src/auth/session.py",
    "test_claim_race",
    "the of",
    "the cache",
    '" - ( * ',
    'fix AND "x" -y a:b NEAR(',
    "日本語のテキスト",
    "ΟΔΟΣ Σίσυφος ΣΑΣ",
    "İstanbul ǅemal ß ẞ ﬁx",
    "e\u0301te\u0301 cafe\u0301",
    "x²³ ½ ① ٣٤ 𝟘𝟙",
    "tab\there\nnew\x1cline\x85and\u3000wide\u2028sep",
    "zero\u200bwidth",
    "emoji 🚀 rocket👩‍💻",
    "dup dup DUP Dup",
    " ".join(f"w{i}" for i in range(100)),
    "x" * 10_000,
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    " \t\n-_:/.\"'*()^+,;=<>!?@#$%&[]{}|\\~`"
)


def _random_char(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return rng.choice(ALPHABET)
    while True:  # an assigned, non-surrogate code point Python 3.11 knows
        point = rng.choice([rng.randrange(0x80, 0x3000), rng.randrange(0x3000, 0x10000)])
        char = chr(point)
        if unicodedata.category(char) not in ("Cn", "Cs", "Co"):
            return char


def _queries() -> list[str]:
    rng = random.Random(20261201)
    generated = [
        "".join(_random_char(rng) for _ in range(rng.randrange(1, 60))) for _ in range(400)
    ]
    words = ["the", "a", "fix", "claim", "race", "of", "AND", "OR", "NOT", "NEAR", "bd-7f3a"]
    generated += [
        " ".join(rng.choice(words) for _ in range(rng.randrange(1, 8))) for _ in range(100)
    ]
    return HOSTILE + generated


def _scores() -> list[tuple[float, int, int, int]]:
    rng = random.Random(7)
    now = 1_790_000_000_000
    out = [(0.0, now, 0, now), (1.0, now - 86_400_000 * 14, 20, now), (0.5, now + 5_000, 3, now)]
    for _ in range(500):
        age = rng.choice([0, rng.randrange(1, 1_000), rng.randrange(1, 400 * 86_400_000)])
        out.append((rng.random(), now - age, rng.randrange(0, 60), now))
    return out


def _at(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def _run_port(
    toolchain: Toolchain, tmp: Path, payload: dict[str, object]
) -> dict[str, list[object]]:
    (tmp / "rules.mts").write_text(
        (EDGE_MODULE.worker_dir / "rules.ts").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (tmp / "driver.mjs").write_text(DRIVER, encoding="utf-8")
    (tmp / "in.json").write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    result = subprocess.run(
        [
            str(toolchain.node),
            "--experimental-strip-types",
            "--no-warnings",
            str(tmp / "driver.mjs"),
            str(tmp / "in.json"),
            str(tmp / "out.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, list[object]] = json.loads((tmp / "out.json").read_text(encoding="utf-8"))
    return answer


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[object], list[object]]:
    queries = _queries()
    scores = _scores()
    answer = _run_port(
        ensure_toolchain(), tmp_path_factory.mktemp("rules"), {"queries": queries, "scores": scores}
    )
    return queries, answer["queries"], answer["scores"]


def test_the_fts_query_of_any_text_is_the_same_in_typescript(
    port: tuple[list[str], list[object], list[object]],
) -> None:
    queries, answers, _ = port
    assert len(answers) == len(queries) >= 500
    mismatched = [
        (q, a, fts_word_query(q))
        for q, a in zip(queries, answers, strict=True)
        if a != fts_word_query(q)
    ]
    assert not mismatched, mismatched[:5]
    assert answers[HOSTILE.index('fix AND "x" -y a:b NEAR(')] == (
        '"fix" OR "x" OR "y" OR "a b" OR "near"'
    )


def test_the_retention_score_is_the_same_in_typescript(
    port: tuple[list[str], list[object], list[object]],
) -> None:
    _, _, answers = port
    for (importance, last, count, now), score in zip(_scores(), answers, strict=True):
        expected = retention_score(importance, _at(last), count, _at(now))
        assert score == pytest.approx(expected, abs=1e-12), (importance, last, count, now)
