"""Search text to safe FTS5 queries: every user token becomes a quoted FTS5 string.

No user text can reach the FTS5 query syntax (``AND``, ``-``, ``:``,
``NEAR(``, ``*``, quotes), so any input is searched as text and never raises.
"""

from __future__ import annotations

import re

__all__ = ["FTS_STOPWORDS", "fts_trigram_query", "fts_word_query"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_MAX_TOKENS = 64

FTS_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "not",
        "of",
        "on",
        "or",
        "so",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "we",
        "our",
    ]
)


def _tokens(query: str) -> list[str]:
    seen: dict[str, None] = {}
    for token in query.split():
        seen.setdefault(token, None)
    return list(seen)[:_MAX_TOKENS]


def fts_word_query(query: str) -> str | None:
    """An FTS5 expression searching ``query`` as words (a word index), or None without words.

    Each whitespace token becomes one quoted phrase of its letter and digit runs
    (``bd-q3fy`` → ``"bd q3fy"``), the phrases OR-ed for BM25; tokens that are
    common English words alone are dropped unless nothing else is left. No text
    reaches FTS5 syntax. The edge memory store runs a port of this function
    (``jetpack-cf-cass``'s ``worker/rules.ts``), checked against it by a test.
    """
    phrases: dict[str, bool] = {}
    for token in _tokens(query):
        words = _WORD.findall(token.lower())
        if not words:
            continue
        phrase = " ".join(words)
        stop = len(words) == 1 and words[0] in FTS_STOPWORDS
        phrases[phrase] = phrases.get(phrase, True) and stop
    if not phrases:
        return None
    kept = [p for p, stop in phrases.items() if not stop] or list(phrases)
    return " OR ".join(f'"{p}"' for p in kept)


def fts_trigram_query(query: str) -> str | None:
    """An FTS5 expression for a trigram (substring) index, or None when no token is long enough."""
    kept = [t for t in _tokens(query) if len(t) >= 3 and t.lower() not in FTS_STOPWORDS]
    if not kept:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in kept)
