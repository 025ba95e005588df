/**
 * Vectors: the wire codec (base64 of little-endian float32, or a JSON list of
 * numbers), the checks of `jetpack.shared.MemoryInput.embedding`, and the
 * built-in index's matrix: every vector of a project, L2-normalised, in one
 * Float32Array, searched by brute force (exact cosine top-k).
 */

/** `jetpack.shared.MAX_EMBEDDING_DIMENSIONS`. */
export const MAX_DIMENSIONS = 4096;
/** `jetpack.shared.FLOAT32_MAX`: the largest finite float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;
const MAX_NORM = Math.sqrt(FLOAT32_MAX);
/** Smallest positive float32 (a subnormal): smaller magnitudes round to 0. */
const FLOAT32_TINY = 1.401298464324817e-45;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** Typed arrays here are little-endian (every platform workerd runs on): bytes map straight to floats. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const SEXTETS = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) {
  SEXTETS["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".charCodeAt(i)] = i;
}

/** Bytes of standard base64 (already checked against {@link BASE64}). */
function base64Bytes(text: string): Uint8Array {
  const pad = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    const a = SEXTETS[text.charCodeAt(i)] ?? 0;
    const b = SEXTETS[text.charCodeAt(i + 1)] ?? 0;
    const c = SEXTETS[text.charCodeAt(i + 2)] ?? 0;
    const d = SEXTETS[text.charCodeAt(i + 3)] ?? 0;
    const word = (a << 18) | (b << 12) | ((c < 0 ? 0 : c) << 6) | (d < 0 ? 0 : d);
    if (o < out.length) out[o++] = word >>> 16;
    if (o < out.length) out[o++] = (word >>> 8) & 0xff;
    if (o < out.length) out[o++] = word & 0xff;
  }
  return out;
}

/** Float32 values of little-endian bytes. */
function floatsOf(bytes: Uint8Array): Float32Array {
  if (LITTLE_ENDIAN) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4).slice();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** A vector from its wire form, or why not (the caller names the field). */
export function decodeVector(value: number[] | string): Float32Array | string {
  let out: Float32Array;
  if (typeof value === "string") {
    if (value.length % 4 !== 0 || !BASE64.test(value)) return "must be base64 of little-endian float32 values";
    const bytes = base64Bytes(value);
    if (bytes.length % 4 !== 0) return "must be base64 of little-endian float32 values";
    out = floatsOf(bytes);
  } else {
    const problem = float32Problem(value);
    if (problem !== null) return problem;
    out = Float32Array.from(value);
  }
  return float32Problem(out) ?? out;
}

/**
 * Why a vector cannot be stored and compared as float32, or null
 * (`jetpack.shared.MemoryInput.embedding`: size, finiteness, zero, and a length
 * whose square float32 cannot hold).
 */
export function float32Problem(values: ArrayLike<number>): string | null {
  if (values.length === 0) return "must not be empty";
  if (values.length > MAX_DIMENSIONS) return `has more than ${MAX_DIMENSIONS} dimensions`;
  let sum = 0; // of squares, in float64: a float32's square cannot overflow it
  let nonzero = false;
  let representable = false;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? 0;
    if (!Number.isFinite(v)) return "must hold finite numbers only";
    const a = Math.abs(v);
    if (a !== 0) nonzero = true;
    if (a >= FLOAT32_TINY) representable = true;
    sum += v * v;
  }
  if (!nonzero) return "is a zero vector; cosine similarity is undefined for it";
  const norm = Math.sqrt(sum); // Infinity when a float64 value squared overflows: refused below
  if (norm > MAX_NORM) {
    return (
      `does not fit float32: its length ${norm.toPrecision(3)} exceeds ${MAX_NORM.toPrecision(3)}, ` +
      "so its square (used by cosine similarity) would be infinite; scale it down"
    );
  }
  if (!representable) {
    return (
      `does not fit float32: every value is below its smallest step (${FLOAT32_TINY.toPrecision(3)}) ` +
      "and would round to a zero vector; scale it up"
    );
  }
  return null;
}

/** The stored form of a vector (little-endian float32 bytes). */
export function toBlob(vector: Float32Array): ArrayBuffer {
  if (LITTLE_ENDIAN) return vector.slice().buffer;
  const out = new ArrayBuffer(vector.length * 4);
  const view = new DataView(out);
  for (let i = 0; i < vector.length; i++) view.setFloat32(i * 4, vector[i] ?? 0, true);
  return out;
}

/** A vector from its stored form. */
export function fromBlob(blob: ArrayBuffer): Float32Array {
  return floatsOf(new Uint8Array(blob));
}

/** `vector / |vector|` (a copy). */
export function normalised(vector: ArrayLike<number>): Float32Array {
  let sum = 0;
  for (let i = 0; i < vector.length; i++) sum += (vector[i] ?? 0) ** 2;
  const norm = Math.sqrt(sum) || 1;
  const out = new Float32Array(vector.length);
  for (let i = 0; i < vector.length; i++) out[i] = (vector[i] ?? 0) / norm;
  return out;
}

/** Cosine of two vectors of the same size. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return dot / (Math.sqrt(na) * Math.sqrt(nb) || 1);
}

/** A scored key. */
export interface Hit {
  seq: number;
  score: number;
}

/** Best first; equal scores: the older (smaller) seq first. */
export const byScore = (a: Hit, b: Hit): number => b.score - a.score || a.seq - b.seq;

/**
 * The `k` best of `hits` (any order in), best first. A bounded heap keeps it
 * O(n log k) for the usual small k.
 */
export function topK(scores: Float32Array | Float64Array, seqs: ArrayLike<number>, n: number, k: number): Hit[] {
  if (k <= 0 || n === 0) return [];
  if (k >= n / 4) {
    const all: Hit[] = [];
    for (let i = 0; i < n; i++) all.push({ seq: seqs[i] ?? 0, score: scores[i] ?? 0 });
    return all.sort(byScore).slice(0, k);
  }
  // Min-heap of the k best so far, the worst at the root.
  const heap: Hit[] = [];
  const worse = (a: Hit, b: Hit): boolean => a.score < b.score || (a.score === b.score && a.seq > b.seq);
  const up = (i: number): void => {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!worse(heap[i] as Hit, heap[parent] as Hit)) break;
      [heap[i], heap[parent]] = [heap[parent] as Hit, heap[i] as Hit];
      i = parent;
    }
  };
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && worse(heap[l] as Hit, heap[m] as Hit)) m = l;
      if (r < heap.length && worse(heap[r] as Hit, heap[m] as Hit)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m] as Hit, heap[i] as Hit];
      i = m;
    }
  };
  for (let i = 0; i < n; i++) {
    const hit = { seq: seqs[i] ?? 0, score: scores[i] ?? 0 };
    if (heap.length < k) {
      heap.push(hit);
      up(heap.length - 1);
    } else if (worse(heap[0] as Hit, hit)) {
      heap[0] = hit;
      down(0);
    }
  }
  return heap.sort(byScore);
}

/**
 * The built-in index of one project: every vector L2-normalised in one
 * contiguous Float32Array (capacity doubles), and the seq of each row. A
 * search is one pass of dot products and a top-k: exact, never approximate.
 */
export class Matrix {
  private rows: Float32Array;
  private seqs: Float64Array;
  private readonly at = new Map<number, number>();
  private size = 0;

  constructor(readonly dims: number) {
    this.rows = new Float32Array(0);
    this.seqs = new Float64Array(0);
  }

  get length(): number {
    return this.size;
  }

  /** Add or replace the vector of `seq`. */
  put(seq: number, vector: ArrayLike<number>): void {
    const unit = normalised(vector);
    let row = this.at.get(seq);
    if (row === undefined) {
      if (this.size === this.seqs.length) this.grow();
      row = this.size++;
      this.at.set(seq, row);
      this.seqs[row] = seq;
    }
    this.rows.set(unit, row * this.dims);
  }

  private grow(): void {
    const capacity = Math.max(1024, this.seqs.length * 2);
    const rows = new Float32Array(capacity * this.dims);
    rows.set(this.rows.subarray(0, this.size * this.dims));
    const seqs = new Float64Array(capacity);
    seqs.set(this.seqs.subarray(0, this.size));
    this.rows = rows;
    this.seqs = seqs;
  }

  /** Drop the vector of `seq` (the last row moves into its place). */
  remove(seq: number): void {
    const row = this.at.get(seq);
    if (row === undefined) return;
    this.at.delete(seq);
    const last = --this.size;
    if (row !== last) {
      const moved = this.seqs[last] ?? 0;
      this.rows.copyWithin(row * this.dims, last * this.dims, (last + 1) * this.dims);
      this.seqs[row] = moved;
      this.at.set(moved, row);
    }
  }

  /** The `k` nearest rows to `query` by cosine, best first (ties: older seq first). */
  search(query: ArrayLike<number>, k: number): Hit[] {
    const unit = normalised(query);
    const d = this.dims;
    const scores = new Float64Array(this.size);
    const rows = this.rows;
    for (let r = 0; r < this.size; r++) {
      let dot = 0;
      const base = r * d;
      for (let j = 0; j < d; j++) dot += (rows[base + j] as number) * (unit[j] as number);
      scores[r] = dot;
    }
    return topK(scores, this.seqs, this.size, k);
  }
}
