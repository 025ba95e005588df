/**
 * Rules the memory store shares with `jetpack.shared.rules` in Python: the safe
 * FTS5 query of a user's text (`fts_word_query`) and the retention score that
 * orders evictions (`retention_score`). The Worker needs both inside its
 * transactions, so they are ported line for line here, and a test runs this
 * file in Node against the Python functions on the same inputs
 * (`tests/test_cf_cass_rules.py`). No imports, so Node runs it as it is.
 */

/** Python's `str.split()` separators (`str.isspace`), not JavaScript's `\s`. */
const SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;
/** Python's `[^\W_]+`: runs of letters and digits. */
const WORD = /[\p{L}\p{N}]+/gu;
/** At most this many distinct whitespace tokens of a query are searched. */
const MAX_TOKENS = 64;

/** Common English words dropped from a query unless nothing else is left. */
export const STOPWORDS: ReadonlySet<string> = new Set([
  "a", "an", "and", "are", "as", "at", "be", "but", "by", "do", "does", "for", "from", "had",
  "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "not", "of", "on", "or", "so",
  "such", "that", "the", "their", "then", "there", "these", "this", "to", "was", "what", "when",
  "where", "which", "who", "why", "will", "with", "you", "your", "we", "our",
]);

function tokens(query: string): string[] {
  const seen = new Set<string>();
  for (const token of query.split(SPACE)) if (token !== "") seen.add(token);
  return [...seen].slice(0, MAX_TOKENS);
}

/**
 * An FTS5 expression for the word index, or null when the text has no words.
 * Each whitespace token becomes one quoted phrase of its letter and digit runs
 * (`bd-q3fy` → `"bd q3fy"`), the phrases OR-ed; no user text reaches FTS5
 * syntax (`AND`, `NEAR(`, `*`, `:`, `-`, quotes are all searched as text).
 */
export function wordQuery(query: string): string | null {
  const phrases = new Map<string, boolean>();
  for (const token of tokens(query)) {
    const words = token.toLowerCase().match(WORD);
    if (words === null) continue;
    const phrase = words.join(" ");
    const stop = words.length === 1 && STOPWORDS.has(words[0] ?? "");
    phrases.set(phrase, (phrases.get(phrase) ?? true) && stop);
  }
  if (phrases.size === 0) return null;
  let kept = [...phrases].filter(([, stop]) => !stop).map(([phrase]) => phrase);
  if (kept.length === 0) kept = [...phrases.keys()];
  return kept.map((phrase) => `"${phrase}"`).join(" OR ");
}

/**
 * How much a memory is worth keeping, in 0..1 (eviction drops the lowest):
 * `0.6 × importance + 0.25 × recency + 0.15 × use`, recency halving every
 * `halfLifeDays` since the last access, use `log(1+n) / log(1+20)` capped at 1.
 */
export function retentionScore(
  importance: number,
  lastAccessedMs: number,
  accessCount: number,
  nowMs: number,
  halfLifeDays = 14,
): number {
  const ageDays = Math.max((nowMs - lastAccessedMs) / 1000, 0) / 86_400;
  const recency = 0.5 ** (ageDays / halfLifeDays);
  const use = Math.min(Math.log1p(Math.max(accessCount, 0)) / Math.log1p(20), 1);
  return 0.6 * importance + 0.25 * recency + 0.15 * use;
}
