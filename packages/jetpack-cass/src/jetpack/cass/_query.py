"""Pure helpers: user text to safe FTS5 queries (the shared rules), and list cursors.

Every user token becomes a quoted FTS5 string, so no user text can reach the
FTS5 query syntax (``AND``, ``-``, ``:``, ``NEAR(``, ``*``, quotes).

- :func:`word_query`: each whitespace-separated token is cut into its letters
  and digits runs, the runs joined as one quoted phrase (``bd-q3fy`` →
  ``"bd q3fy"``, ``src/auth/session.py`` → ``"src auth session py"``), and the
  phrases OR-ed for BM25. The word index splits text the same way, so an
  identifier matches exactly its own sequence of parts. Common English words
  are dropped unless nothing else is left.
- :func:`trigram_query`: tokens of three or more characters, each quoted
  whole (``""`` doubling any quote), OR-ed, for the substring index.
"""

from __future__ import annotations

import base64
import binascii
import json

from jetpack.shared.errors import ValidationError
from jetpack.shared.rules import FTS_STOPWORDS as STOPWORDS
from jetpack.shared.rules import fts_trigram_query as trigram_query
from jetpack.shared.rules import fts_word_query as word_query

__all__ = ["STOPWORDS", "decode_cursor", "encode_cursor", "trigram_query", "word_query"]

_CURSOR_PREFIX = "c1."


def encode_cursor(seq: int, type_filter: str | None) -> str:
    """An opaque cursor: the last ``seq`` of a page and the type filter it was made under."""
    raw = json.dumps([seq, type_filter], separators=(",", ":")).encode()
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, type_filter: str | None) -> int:
    """The ``seq`` a cursor points after; ValidationError('cursor') for anything else.

    A cursor made under another type filter is refused too: resuming it would
    silently skip or repeat entries.
    """
    bad = ValidationError("cursor", "is not a cursor issued by list_memories of this store")
    if not isinstance(cursor, str) or not cursor.startswith(_CURSOR_PREFIX):
        raise bad
    body = cursor[len(_CURSOR_PREFIX) :]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error) as error:
        raise bad from error
    if (
        not isinstance(decoded, list)
        or len(decoded) != 2
        or not isinstance(decoded[0], int)
        or isinstance(decoded[0], bool)
        or decoded[0] < 0
        or not (decoded[1] is None or isinstance(decoded[1], str))
    ):
        raise bad
    if decoded[1] != type_filter:
        raise ValidationError(
            "cursor", f"was issued for type={decoded[1]!r}, not type={type_filter!r}"
        )
    return int(decoded[0])
