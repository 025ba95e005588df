/**
 * Lease paths: normalisation and overlap between paths and glob patterns, the
 * same rules as `jetpack.shared.rules` (`normalize_lease_path`,
 * `paths_overlap`), judged by the same cases (the cf-mail tests run both).
 *
 * Patterns use `*` (any run of characters within one segment), `?` (one
 * character) and `**` (any number of whole segments, as a segment of its
 * own). Two patterns overlap when some path matches both. Characters are code
 * points, as in Python. No recursion, and about linear in the pattern lengths,
 * so the longest paths with any number of wildcards get an answer at once.
 *
 * Pure: no imports, no I/O (the tests run this file under plain Node).
 */

/** Longest path or pattern accepted, in characters (code points). */
export const MAX_PATH_CHARS = 1024;

/** What Python's `str.strip()` removes (`str.isspace`). */
const PY_SPACE = new Set(
  [
    "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x1f", " ", "\x85", "\xa0",
    "\u1680", "\u2000", "\u2001", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006", "\u2007",
    "\u2008", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
  ],
);

function pyStrip(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && PY_SPACE.has(text[start] ?? "")) start++;
  while (end > start && PY_SPACE.has(text[end - 1] ?? "")) end--;
  return text.slice(start, end);
}

/** A normalised path, or why the input is refused. */
export type Normalized = { ok: true; path: string } | { ok: false; message: string };

/**
 * The project-relative POSIX form of `path`: `./src/a.py`, `src//a.py` and
 * `src/x/../a.py` all become `src/a.py`; `.` becomes `**`. Absolute paths,
 * paths that climb out of the project, NUL and lone surrogates are refused.
 */
export function normalizeLeasePath(path: string): Normalized {
  if (pyStrip(path).length === 0) return { ok: false, message: "must be a non-empty path" };
  if ([...path].length > MAX_PATH_CHARS) {
    return { ok: false, message: `is longer than ${MAX_PATH_CHARS} characters` };
  }
  if (path.includes("\0")) return { ok: false, message: "must not contain NUL" };
  if (!path.isWellFormed()) return { ok: false, message: "is not valid Unicode text (lone surrogate)" };
  const raw = pyStrip(path).replaceAll("\\", "/");
  if (raw.startsWith("/") || [...raw][1] === ":") {
    return { ok: false, message: `${JSON.stringify(path)} is absolute; use a project-relative path` };
  }
  const kept: string[] = [];
  for (const part of raw.split("/")) {
    if (part === "" || part === ".") continue;
    if (part !== ".." || kept.length === 0 || kept[kept.length - 1] === "..") kept.push(part);
    else kept.pop();
  }
  const norm = kept.join("/");
  if (norm === ".." || norm.startsWith("../")) {
    return { ok: false, message: `${JSON.stringify(path)} escapes the project` };
  }
  return { ok: true, path: norm === "" ? "**" : norm };
}

/** True when `path` holds a wildcard. */
export function isGlob(path: string): boolean {
  return path.includes("*") || path.includes("?");
}

type Agree<T> = (x: T, y: T) => boolean;
type Find<T> = (piece: readonly T[], word: readonly T[], start: number, end: number) => number;

const overlapCache = new Map<string, boolean>();
const globCache = new Map<string, boolean>();
const CACHE_SIZE = 4096;

function remember(cache: Map<string, boolean>, key: string, value: boolean): boolean {
  if (cache.size >= CACHE_SIZE) cache.clear();
  cache.set(key, value);
  return value;
}

/** True when some path matches both normalised patterns `a` and `b`. */
export function pathsOverlap(a: string, b: string): boolean {
  const key = `${a}\0${b}`;
  const known = overlapCache.get(key);
  if (known !== undefined) return known;
  return remember(overlapCache, key, segmentsOverlap(collapse(a.split("/")), collapse(b.split("/"))));
}

/** Runs of `**` segments mean the same as one. */
function collapse(segments: readonly string[]): string[] {
  const out: string[] = [];
  for (const segment of segments) {
    if (!(segment === "**" && out[out.length - 1] === "**")) out.push(segment);
  }
  return out;
}

function segmentsOverlap(a: readonly string[], b: readonly string[]): boolean {
  return starOverlap(a, b, "**", globOverlap, findSegments);
}

/** True when one string within a segment matches both glob segments. */
function globOverlap(x: string, y: string): boolean {
  const key = `${x}\0${y}`;
  const known = globCache.get(key);
  if (known !== undefined) return known;
  const xs = [...x.replace(/\*{2,}/g, "*")];
  const ys = [...y.replace(/\*{2,}/g, "*")];
  return remember(globCache, key, starOverlap(xs, ys, "*", charAgree, findChars));
}

function charAgree(p: string, q: string): boolean {
  return p === q || p === "?" || q === "?";
}

function allAgree<T>(agree: Agree<T>, xs: readonly T[], ys: readonly T[]): boolean {
  for (let i = 0; i < xs.length; i++) {
    if (!agree(xs[i] as T, ys[i] as T)) return false;
  }
  return true;
}

/** The star-free pieces between the stars. */
function split<T>(items: readonly T[], star: T): T[][] {
  const pieces: T[][] = [[]];
  for (const item of items) {
    if (item === star) pieces.push([]);
    else pieces[pieces.length - 1]?.push(item);
  }
  return pieces;
}

/**
 * Whether two sequences of atoms, where `star` is any run of atoms, share a
 * match. Without `star` on either side the atoms pair up one to one. With
 * `star` on both sides only the atoms before the first and after the last
 * `star` must agree. With `star` on one side only, the other is a fixed word:
 * the first and last pieces match its ends and each inner piece its leftmost
 * place in between (leftmost is never worse).
 */
function starOverlap<T>(a: readonly T[], b: readonly T[], star: T, agree: Agree<T>, find: Find<T>): boolean {
  const starA = a.includes(star);
  const starB = b.includes(star);
  if (!starA && !starB) return a.length === b.length && allAgree(agree, a, b);
  if (starA && starB) return endsAgree(a, b, star, agree);
  const [pattern, word] = starB ? [b, a] : [a, b];
  const pieces = split(pattern, star);
  const first = pieces[0] ?? [];
  const last = pieces[pieces.length - 1] ?? [];
  if (first.length + last.length > word.length) return false;
  const end = word.length - last.length;
  if (!allAgree(agree, first, word.slice(0, first.length)) || !allAgree(agree, last, word.slice(end))) {
    return false;
  }
  let pos = first.length;
  for (const piece of pieces.slice(1, -1)) {
    const found = find(piece, word, pos, end);
    if (found < 0) return false;
    pos = found + piece.length;
  }
  return true;
}

/** Both hold `star`: the parts before the first and after the last must agree. */
function endsAgree<T>(a: readonly T[], b: readonly T[], star: T, agree: Agree<T>): boolean {
  const head = Math.min(a.indexOf(star), b.indexOf(star));
  const tail = Math.min(a.length - 1 - a.lastIndexOf(star), b.length - 1 - b.lastIndexOf(star));
  if (!allAgree(agree, a.slice(0, head), b.slice(0, head))) return false;
  return tail === 0 || allAgree(agree, a.slice(a.length - tail), b.slice(b.length - tail));
}

function leftmost<T>(agree: Agree<T>): Find<T> {
  return (piece, word, start, end) => {
    for (let at = start; at + piece.length <= end; at++) {
      let fits = true;
      for (let i = 0; i < piece.length && fits; i++) fits = agree(piece[i] as T, word[at + i] as T);
      if (fits) return at;
    }
    return -1;
  };
}

const findSegments: Find<string> = leftmost(globOverlap);
const findChars: Find<string> = leftmost(charAgree);
