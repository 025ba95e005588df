/**
 * The memory store of one project: a Durable Object (`MemoryDO`, one per
 * project, `idFromName(project)`) holding the project's memories, their FTS5
 * index and their vectors in its own SQLite. Same semantics as jetpack-cass:
 * the conformance kit checks both.
 *
 * - Every write is one synchronous SQLite transaction (`transactionSync`): all
 *   or nothing, and the object runs one at a time, so no write races another.
 * - Text search is FTS5 BM25 over the project's own table, so a project's
 *   scores and rankings depend on its memories alone (a table shared by every
 *   project would rank by, and reveal, other projects' words).
 * - Vectors: the built-in index keeps them as a matrix in memory (loaded from
 *   SQLite on first use, kept in step by every write) and ranks by brute force.
 *   When Vectorize is bound, vectors are mirrored there instead (an outbox:
 *   `vectors.sync`, flushed by an alarm), and a search merges Vectorize's
 *   answer with the project's writes Vectorize does not show yet (read your
 *   writes), and drops what was deleted meanwhile.
 * - The project's vector space (`embedding_model`, `dimensions`) is recorded
 *   with its first vector; a vector of another size, or made by another model,
 *   is refused naming `embedding`, never mixed in.
 * - `max_entries`: a write that overflows it evicts, in the same transaction,
 *   down to 95 % of it, lowest `retention_score` first (`rules.ts`), protected
 *   types last, never the write's own last entry.
 */
import { DurableObject } from "cloudflare:workers";
import { newId } from "@jetpack/gateway";
import { type EntryRow, rowToEntry } from "./rows";
import { retentionScore, wordQuery } from "./rules";
import { CALLER_MODEL, type MemoryEntry, type MemoryStats } from "./schemas";
import * as q from "./sql";
import {
  AI_MODEL,
  aiOf,
  embedTexts,
  type MemoryEnv,
  namespaceOf,
  projectKey,
  seqOf,
  VECTORIZE_BATCH,
  VECTORIZE_GET_BATCH,
  VECTORIZE_TOP_K,
  vectorId,
  vectorIndexOf,
} from "./vectorize";
import { byScore, cosine, fromBlob, type Hit, Matrix, toBlob } from "./vectors";

/** A refusal, carried back to the route (errors lose their shape over RPC). */
export interface Failure {
  readonly error: { status: 404 | 409 | 422; code: string; message: string; field?: string };
}

const invalid = (field: string, message: string): Failure => ({ error: { status: 422, code: "invalid", message, field } });
const conflict = (message: string, code = "exists"): Failure => ({ error: { status: 409, code, message } });
const notFound = (id: string): Failure => ({
  error: { status: 404, code: "not_found", message: `memory ${JSON.stringify(id)} not found` },
});

export function isFailure(value: unknown): value is Failure {
  return typeof value === "object" && value !== null && "error" in value;
}

/** One memory to store, as the route validated it. */
export interface WriteItem {
  id: string | null;
  type: string;
  content: string;
  importance: number;
  metadata: Record<string, unknown>;
  embedding: Float32Array | null;
  embedding_model: string | null;
}

/** How a write keeps the store's size: the caller's `max_entries` and protected types. */
export interface Keeping {
  maxEntries: number | null;
  protectedTypes: readonly string[];
}

/** See {@link MemoryDO.indexState}. */
export interface IndexState {
  index: "built-in" | "vectorize";
  vectors: number;
  unconfirmed: number;
  deletes_unconfirmed: number;
  embedding_model: string | null;
  dimensions: number | null;
}

/** A project's vector space: the model and size of its vectors (null until the first). */
interface Space {
  model: string | null;
  dims: number | null;
}

/** Statements binding a JSON array take this many items per call. */
const JSON_CHUNK = 5_000;
/** The first flush waits this long after a write; then it backs off. */
const FLUSH_DELAY_MS = 50;
const FLUSH_BACKOFF_MAX_MS = 60_000;
/** A vector sent to Vectorize is looked for there only after this long. */
const CONFIRM_AFTER_MS = 500;

function chunks<T>(items: readonly T[], size = JSON_CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (Math.fround(a[i] ?? 0) !== Math.fround(b[i] ?? 0)) return false;
  return true;
}

export class MemoryDO extends DurableObject<MemoryEnv> {
  private readonly sql: SqlStorage;
  /** The built-in index, once loaded (null: not loaded, or Vectorize is bound). */
  private matrix: Matrix | null = null;
  private project: string | null = null;
  private key = "";
  private namespace = "";
  private backoffMs = FLUSH_DELAY_MS;

  constructor(ctx: DurableObjectState, env: MemoryEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.migrate();
  }

  private migrate(): void {
    this.sql.exec(q.META_TABLE);
    const found = Number(this.meta("schema") ?? 0);
    if (found > q.SCHEMA_VERSION) throw new Error(`memory schema v${found} is newer than this Worker`);
    this.ctx.storage.transactionSync(() => {
      for (let version = found; version < q.SCHEMA_VERSION; version++) {
        for (const statement of q.MIGRATIONS[version] ?? []) this.sql.exec(statement);
      }
      this.setMeta("schema", q.SCHEMA_VERSION);
    });
  }

  private meta(key: string): SqlStorageValue | undefined {
    return this.sql.exec<{ value: SqlStorageValue }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value;
  }

  private setMeta(key: string, value: SqlStorageValue): void {
    this.sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value);
  }

  /** Bind this object to its project (once) and derive its Vectorize names. */
  private async enter(project: string): Promise<void> {
    if (this.project === project) return;
    const stored = this.meta("project");
    if (stored !== undefined && stored !== project) throw new Error("a memory object was reached for another project");
    if (stored === undefined) this.setMeta("project", project);
    this.key = await projectKey(project);
    this.namespace = await namespaceOf(project);
    this.project = project;
    // Vectors Vectorize has not confirmed yet (or all of them, when Vectorize
    // was bound after they were written) are sent by the next flush.
    if (vectorIndexOf(this.env) !== null) {
      const behind = this.sql.exec(
        "SELECT (SELECT count(*) FROM vectors WHERE sync < 2) + (SELECT count(*) FROM vectorize_deletes) AS n",
      );
      if (Number(behind.one().n) > 0) this.scheduleFlush(FLUSH_DELAY_MS);
    }
  }

  // -- the vector space -------------------------------------------------------

  private space(): Space {
    const model = this.meta("embedding_model");
    const dims = this.meta("dimensions");
    return {
      model: typeof model === "string" ? model : null,
      dims: dims === undefined || dims === null ? null : Number(dims),
    };
  }

  /** Why a vector of `dims` made by `model` does not belong in `space`, or null. */
  private spaceProblem(space: Space, dims: number, model: string): string | null {
    const bound = vectorIndexOf(this.env);
    if (bound !== null && dims !== bound.dimensions) {
      return `has ${dims} dimensions; this Worker's Vectorize index holds ${bound.dimensions}`;
    }
    if (space.dims !== null && dims !== space.dims) {
      return `has ${dims} dimensions; this project's vectors have ${space.dims}`;
    }
    if (model !== CALLER_MODEL && space.model !== null && model !== space.model) {
      return (
        `was made by ${model}; this project's index holds vectors of ${space.model} ` +
        `(${space.dims} dimensions), and vectors of two models are never mixed`
      );
    }
    return null;
  }

  /** The space after adding a vector (the first sets the size; the first named model sets it). */
  private adopt(space: Space, dims: number, model: string): Space {
    return {
      dims: space.dims ?? dims,
      model: space.model ?? (model === CALLER_MODEL ? null : model),
    };
  }

  private saveSpace(before: Space, after: Space): void {
    if (after.dims !== before.dims) this.setMeta("dimensions", after.dims);
    if (after.model !== before.model) this.setMeta("embedding_model", after.model);
  }

  /** Whether the Worker may embed with Workers AI into this space. */
  private aiFits(space: Space): boolean {
    return this.spaceProblem(space, 384, AI_MODEL) === null;
  }

  private vectorCount(): number {
    return Number(this.sql.exec("SELECT count(*) AS n FROM vectors").one().n);
  }

  // -- store ------------------------------------------------------------------

  /** Store memories, all or none; the ids, in order. */
  async store(project: string, items: WriteItem[], keeping: Keeping): Promise<{ ids: string[] } | Failure> {
    await this.enter(project);
    let space = this.space();
    for (const [i, item] of items.entries()) {
      if (item.embedding === null) continue;
      const model = item.embedding_model ?? CALLER_MODEL;
      const problem = this.spaceProblem(space, item.embedding.length, model);
      if (problem !== null) return invalid(items.length > 1 ? `memories.${i}.embedding` : "embedding", problem);
      space = this.adopt(space, item.embedding.length, model);
    }
    const made = new Map<number, Float32Array>();
    const ai = aiOf(this.env);
    const todo = items.flatMap((item, i) => (item.embedding === null ? [i] : []));
    if (ai !== null && todo.length > 0 && this.aiFits(space)) {
      try {
        const vectors = await embedTexts(
          ai,
          todo.map((i) => items[i]?.content ?? ""),
        );
        todo.forEach((i, n) => made.set(i, vectors[n] as Float32Array));
      } catch (err) {
        console.warn(`embedding ${todo.length} memories with Workers AI failed; stored without vectors:`, err);
      }
    }
    const result = this.ctx.storage.transactionSync(() => this.insert(items, made, keeping));
    if (!isFailure(result)) this.afterWrite(result.vectors, result.deleted);
    return isFailure(result) ? result : { ids: result.ids };
  }

  private insert(
    items: readonly WriteItem[],
    made: Map<number, Float32Array>,
    keeping: Keeping,
  ): { ids: string[]; vectors: [number, Float32Array][]; deleted: number[] } | Failure {
    // The space again: a write may have landed while Workers AI answered.
    const before = this.space();
    let space = before;
    const vectors: (readonly [Float32Array, string] | null)[] = items.map((item, i) => {
      if (item.embedding !== null) return [item.embedding, item.embedding_model ?? CALLER_MODEL] as const;
      const vector = made.get(i);
      return vector === undefined ? null : ([vector, AI_MODEL] as const);
    });
    for (const [i, pair] of vectors.entries()) {
      if (pair === null) continue;
      const problem = this.spaceProblem(space, pair[0].length, pair[1]);
      if (problem !== null) {
        if (items[i]?.embedding !== null) return invalid("embedding", problem);
        vectors[i] = null; // Workers AI's vector no longer fits: store without
        continue;
      }
      space = this.adopt(space, pair[0].length, pair[1]);
    }
    const explicit = items.flatMap((item) => (item.id === null ? [] : [item.id]));
    const seen = new Set<string>();
    for (const id of explicit) {
      if (seen.has(id)) return conflict(`memory ${JSON.stringify(id)} appears twice in one batch`);
      seen.add(id);
    }
    const taken = this.existing(explicit);
    if (taken.length > 0) return conflict(`memory ${JSON.stringify(taken.sort()[0])} already exists`);
    const ids = items.map((item) => item.id ?? "");
    for (;;) {
      const fresh = ids.flatMap((id, i) => (id === "" ? [i] : []));
      if (fresh.length === 0) break;
      for (const i of fresh) {
        const candidate = newId("mem");
        if (!seen.has(candidate)) {
          ids[i] = candidate;
          seen.add(candidate);
        }
      }
      const clash = new Set(this.existing(fresh.map((i) => ids[i] ?? "")));
      for (const i of fresh) if (clash.has(ids[i] ?? "")) ids[i] = "";
    }
    const now = Date.now();
    const seqs: number[] = [];
    for (const [i, item] of items.entries()) {
      const row = this.sql
        .exec<{ seq: number }>(
          q.INSERT_MEMORY,
          ids[i] ?? "",
          item.type,
          item.content,
          item.importance,
          JSON.stringify(item.metadata),
          vectors[i] === null ? 0 : 1,
          now,
          now,
        )
        .one();
      seqs.push(Number(row.seq));
    }
    this.sql.exec(q.INDEX_TEXT, seqs[0] ?? 0);
    const written: [number, Float32Array][] = [];
    for (const [i, pair] of vectors.entries()) {
      if (pair === null) continue;
      const seq = seqs[i] ?? 0;
      this.sql.exec(q.UPSERT_VECTOR, seq, pair[1], toBlob(pair[0]));
      written.push([seq, pair[0]]);
    }
    this.saveSpace(before, space);
    let deleted: number[] = [];
    if (keeping.maxEntries !== null && this.count() > keeping.maxEntries) {
      const lowWater = keeping.maxEntries - Math.floor(keeping.maxEntries / 20);
      const last = seqs[seqs.length - 1] ?? 0;
      deleted = this.trim(lowWater, last, new Set(seqs), new Set(keeping.protectedTypes));
    }
    return { ids, vectors: written, deleted };
  }

  private existing(ids: readonly string[]): string[] {
    const out: string[] = [];
    for (const chunk of chunks(ids)) {
      for (const row of this.sql.exec<{ id: string }>(q.EXISTING_IDS, JSON.stringify(chunk))) out.push(row.id);
    }
    return out;
  }

  private count(): number {
    return Number(this.sql.exec("SELECT count(*) AS n FROM memories").one().n);
  }

  /** Keep the in-memory index and the Vectorize outbox in step with a committed write. */
  private afterWrite(vectors: readonly [number, Float32Array][], deleted: readonly number[]): void {
    if (vectorIndexOf(this.env) !== null) {
      if (vectors.length > 0 || deleted.length > 0) this.scheduleFlush(FLUSH_DELAY_MS);
      return;
    }
    if (this.matrix === null) return;
    for (const seq of deleted) this.matrix.remove(seq);
    for (const [seq, vector] of vectors) {
      if (vector.length === this.matrix.dims) this.matrix.put(seq, vector);
    }
  }

  // -- deletes and eviction -------------------------------------------------------

  /** Delete memories by seq (text index, vector, Vectorize tombstone with them). */
  private deleteSeqs(seqs: readonly number[]): number {
    if (seqs.length === 0) return 0;
    const mirrored = vectorIndexOf(this.env) !== null;
    let removed = 0;
    for (const chunk of chunks(seqs)) {
      const list = JSON.stringify(chunk);
      if (mirrored) {
        for (const row of this.sql.exec<{ seq: number }>(`SELECT seq FROM vectors WHERE seq IN (${q.SEQS_IN})`, list)) {
          this.sql.exec("INSERT OR REPLACE INTO vectorize_deletes (vid, sync) VALUES (?, 0)", vectorId(this.key, Number(row.seq)));
        }
      }
      this.sql.exec(`DELETE FROM memories_fts WHERE rowid IN (${q.SEQS_IN})`, list);
      this.sql.exec(`DELETE FROM vectors WHERE seq IN (${q.SEQS_IN})`, list);
      removed += this.sql.exec(`DELETE FROM memories WHERE seq IN (${q.SEQS_IN}) RETURNING seq`, list).toArray().length;
    }
    return removed;
  }

  /**
   * Delete the lowest-ranked entries down to `target`, never `newest`. Order of
   * eviction (jetpack-cass's): unprotected types first, then entries outside
   * `fresh` (the write that overflowed), then the lowest retention score, then
   * the oldest. The seqs deleted.
   */
  private trim(target: number, newest: number, fresh: ReadonlySet<number>, protectedTypes: ReadonlySet<string>): number[] {
    const rows = this.sql
      .exec<{ seq: number; type: string; importance: number; last_accessed: number; access_count: number }>(
        "SELECT seq, type, importance, last_accessed, access_count FROM memories",
      )
      .toArray();
    const excess = rows.length - target;
    if (excess <= 0) return [];
    const now = Date.now();
    const ranked = rows
      .filter((row) => Number(row.seq) !== newest)
      .map((row) => ({
        seq: Number(row.seq),
        kept: protectedTypes.has(row.type) ? 1 : 0,
        fresh: fresh.has(Number(row.seq)) ? 1 : 0,
        score: retentionScore(Number(row.importance), Number(row.last_accessed), Number(row.access_count), now),
      }))
      .sort((a, b) => a.kept - b.kept || a.fresh - b.fresh || a.score - b.score || a.seq - b.seq);
    const doomed = ranked.slice(0, excess).map((row) => row.seq);
    this.deleteSeqs(doomed);
    return doomed;
  }

  async remove(project: string, id: string): Promise<boolean> {
    await this.enter(project);
    const row = this.sql.exec<{ seq: number }>("SELECT seq FROM memories WHERE id = ?", id).toArray()[0];
    if (row === undefined) return false;
    const seq = Number(row.seq);
    this.ctx.storage.transactionSync(() => this.deleteSeqs([seq]));
    this.afterWrite([], [seq]);
    return true;
  }

  /** Delete entries with importance below `threshold`, except protected types; how many. */
  async compact(project: string, threshold: number, protectedTypes: readonly string[]): Promise<number> {
    await this.enter(project);
    const rows = this.sql
      .exec<{ seq: number }>(
        "SELECT seq FROM memories WHERE importance < ? AND type NOT IN (SELECT value FROM json_each(?))",
        threshold,
        JSON.stringify(protectedTypes),
      )
      .toArray();
    const seqs = rows.map((row) => Number(row.seq));
    const removed = this.ctx.storage.transactionSync(() => this.deleteSeqs(seqs));
    this.afterWrite([], seqs);
    return removed;
  }

  /** Trim to `maxEntries` by lowest retention score; never the newest entry. How many went. */
  async adaptiveCompact(project: string, maxEntries: number, protectedTypes: readonly string[]): Promise<number> {
    await this.enter(project);
    const newest = Number(this.sql.exec("SELECT coalesce(max(seq), 0) AS n FROM memories").one().n);
    const doomed = this.ctx.storage.transactionSync(() => this.trim(maxEntries, newest, new Set(), new Set(protectedTypes)));
    this.afterWrite([], doomed);
    return doomed.length;
  }

  // -- single entries and listings ---------------------------------------------------

  private entries(where: string, order: string, ...params: SqlStorageValue[]): MemoryEntry[] {
    const rows = this.sql.exec<EntryRow>(`SELECT ${q.ENTRY} FROM ${q.FROM} ${where} ORDER BY ${order}`, ...params);
    return rows.toArray().map((row) => rowToEntry(row));
  }

  private entryBySeq(seq: number): MemoryEntry | null {
    return this.entries("WHERE m.seq = ?", "m.seq", seq)[0] ?? null;
  }

  /** Stored rows by seq (vanished ones absent). */
  private rowsOf(seqs: readonly number[]): Map<number, EntryRow> {
    const bySeq = new Map<number, EntryRow>();
    for (const chunk of chunks(seqs)) {
      const rows = this.sql.exec<EntryRow>(`SELECT ${q.ENTRY} FROM ${q.FROM} WHERE m.seq IN (${q.SEQS_IN})`, JSON.stringify(chunk));
      for (const row of rows) bySeq.set(Number(row.seq), row);
    }
    return bySeq;
  }

  /** The entries of ranked hits, in their order, each with its score (vanished rows skipped). */
  private hitsToEntries(hits: readonly Hit[]): MemoryEntry[] {
    if (hits.length === 0) return [];
    const bySeq = this.rowsOf(hits.map((h) => h.seq));
    return hits.flatMap((hit) => {
      const row = bySeq.get(hit.seq);
      return row === undefined ? [] : [rowToEntry(row, hit.score)];
    });
  }

  /** The entry after counting the access (one UPDATE … RETURNING), or null. */
  async retrieve(project: string, id: string): Promise<MemoryEntry | null> {
    await this.enter(project);
    const row = this.sql.exec<{ seq: number }>(q.RETRIEVE, Date.now(), id).toArray()[0];
    return row === undefined ? null : this.entryBySeq(Number(row.seq));
  }

  async setImportance(project: string, id: string, importance: number): Promise<MemoryEntry | Failure> {
    await this.enter(project);
    const row = this.sql.exec<{ seq: number }>(q.SET_IMPORTANCE, importance, id).toArray()[0];
    if (row === undefined) return notFound(id);
    return this.entryBySeq(Number(row.seq)) ?? notFound(id);
  }

  /** One page, newest first by seq; `before`: the seq of the previous page's last entry. */
  async list(
    project: string,
    limit: number,
    before: number | null,
    type: string | null,
  ): Promise<{ items: MemoryEntry[]; last: number | null; hasMore: boolean }> {
    await this.enter(project);
    const clauses: string[] = [];
    const params: SqlStorageValue[] = [];
    if (before !== null) {
      clauses.push("m.seq < ?");
      params.push(before);
    }
    if (type !== null) {
      clauses.push("m.type = ?");
      params.push(type);
    }
    const where = clauses.length > 0 ? `WHERE ${clauses.join(" AND ")}` : "";
    const rows = this.sql
      .exec<EntryRow>(`SELECT ${q.ENTRY} FROM ${q.FROM} ${where} ORDER BY m.seq DESC LIMIT ?`, ...params, limit + 1)
      .toArray();
    const hasMore = rows.length > limit;
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return { items: page.map((row) => rowToEntry(row)), last: hasMore && last ? Number(last.seq) : null, hasMore };
  }

  async recent(project: string, limit: number): Promise<MemoryEntry[]> {
    await this.enter(project);
    return this.entries("", "m.created_at DESC, m.seq DESC LIMIT ?", limit);
  }

  async byType(project: string, type: string, limit: number): Promise<MemoryEntry[]> {
    await this.enter(project);
    return this.entries("WHERE m.type = ?", "m.importance DESC, m.last_accessed DESC, m.seq DESC LIMIT ?", type, limit);
  }

  async stats(project: string): Promise<MemoryStats> {
    await this.enter(project);
    const byType: Record<string, number> = {};
    for (const row of this.sql.exec<{ type: string; n: number }>("SELECT type, count(*) AS n FROM memories GROUP BY type")) {
      byType[row.type] = Number(row.n);
    }
    const totals = this.sql
      .exec<{ total: number; avg: number; accesses: number; embedded: number }>(
        `SELECT count(*) AS total, coalesce(avg(importance), 0) AS avg,
           coalesce(sum(access_count), 0) AS accesses, coalesce(sum(has_embedding), 0) AS embedded FROM memories`,
      )
      .one();
    const space = this.space();
    return {
      total: Number(totals.total),
      by_type: byType,
      avg_importance: Number(totals.avg),
      total_accesses: Number(totals.accesses),
      with_embedding: Number(totals.embedded),
      without_embedding: Number(totals.total) - Number(totals.embedded),
      embedding_model: space.model,
      embedding_dimensions: space.dims,
    };
  }

  /**
   * Where the project's vectors are searched, and how far Vectorize lags: the
   * vectors it may not show yet (searched here meanwhile) and the deletes it
   * may still show (filtered out here meanwhile).
   */
  async indexState(project: string): Promise<IndexState> {
    await this.enter(project);
    const mirrored = vectorIndexOf(this.env) !== null;
    const count = (sql: string) => Number(this.sql.exec(sql).one().n);
    const space = this.space();
    return {
      index: mirrored ? "vectorize" : "built-in",
      vectors: this.vectorCount(),
      unconfirmed: mirrored ? count("SELECT count(*) AS n FROM vectors WHERE sync < 2") : 0,
      deletes_unconfirmed: mirrored ? count("SELECT count(*) AS n FROM vectorize_deletes") : 0,
      embedding_model: space.model,
      dimensions: space.dims,
    };
  }

  // -- searches -------------------------------------------------------------------

  /** `(seq, -bm25)` best first over this project's FTS5 table (`rules.wordQuery`). */
  private textRank(query: string, n: number): Hit[] {
    const expr = wordQuery(query);
    if (expr === null) return [];
    const rows = this.sql.exec<{ seq: number; score: number }>(q.BM25, expr, n);
    return rows.toArray().map((row) => ({ seq: Number(row.seq), score: -Number(row.score) }));
  }

  async search(project: string, query: string, limit: number): Promise<MemoryEntry[]> {
    await this.enter(project);
    return this.hitsToEntries(this.textRank(query, limit));
  }

  /** The built-in index, loaded from SQLite on first use. */
  private loadMatrix(dims: number): Matrix {
    if (this.matrix !== null && this.matrix.dims === dims) return this.matrix;
    const matrix = new Matrix(dims);
    for (const row of this.sql.exec<{ seq: number; vector: ArrayBuffer }>("SELECT seq, vector FROM vectors")) {
      const vector = fromBlob(row.vector);
      if (vector.length === dims) matrix.put(Number(row.seq), vector);
    }
    this.matrix = matrix;
    return matrix;
  }

  /** The `k` nearest stored vectors to `vector`, best first. */
  private async vectorRank(vector: Float32Array, k: number): Promise<Hit[]> {
    const bound = vectorIndexOf(this.env);
    if (bound === null) return this.loadMatrix(vector.length).search(vector, k);
    // Writes Vectorize may not show yet: scored here, by brute force.
    const pending = new Map<number, number>();
    for (const row of this.sql.exec<{ seq: number; vector: ArrayBuffer }>("SELECT seq, vector FROM vectors WHERE sync < 2")) {
      pending.set(Number(row.seq), cosine(vector, fromBlob(row.vector)));
    }
    const deletes = Number(this.sql.exec("SELECT count(*) AS n FROM vectorize_deletes").one().n);
    const topK = Math.min(VECTORIZE_TOP_K, k + deletes + pending.size);
    const hits: Hit[] = [...pending].map(([seq, score]) => ({ seq, score }));
    let answer: VectorizeMatches = { matches: [], count: 0 };
    try {
      answer = await bound.api.query(vector, { topK, namespace: this.namespace, returnValues: false, returnMetadata: "none" });
    } catch (err) {
      console.error("Vectorize query failed; answering from this project's unindexed writes only:", err);
    }
    const found = new Map<number, number>();
    for (const match of answer.matches) {
      const seq = seqOf(this.key, match.id);
      if (seq !== null && !pending.has(seq)) found.set(seq, match.score);
    }
    // Vectorize may still show vectors deleted here: keep only live ones.
    for (const chunk of chunks([...found.keys()])) {
      for (const row of this.sql.exec<{ seq: number }>(`SELECT seq FROM vectors WHERE seq IN (${q.SEQS_IN})`, JSON.stringify(chunk))) {
        hits.push({ seq: Number(row.seq), score: found.get(Number(row.seq)) ?? 0 });
      }
    }
    return hits.sort(byScore).slice(0, k);
  }

  /** Check a query vector against the space; the refusal, or null. */
  private queryProblem(vector: Float32Array, model: string | null): Failure | null {
    const problem = this.spaceProblem(this.space(), vector.length, model ?? CALLER_MODEL);
    return problem === null ? null : invalid("embedding", problem);
  }

  /** The query's vector: the one given, else Workers AI's (when bound and it fits), else null. */
  private async queryVector(query: string | null, vector: Float32Array | null): Promise<Float32Array | null> {
    if (vector !== null) return vector;
    const ai = aiOf(this.env);
    if (ai === null || query === null || query.trim() === "" || !this.aiFits(this.space())) return null;
    try {
      return (await embedTexts(ai, [query]))[0] ?? null;
    } catch (err) {
      console.warn("embedding a query with Workers AI failed; text search only:", err);
      return null;
    }
  }

  /**
   * Vector search: nearest first by cosine. Without vectors stored yet, or
   * without a query vector (none given, no Workers AI), a given `query` is
   * searched as text instead (`by: "text"`).
   */
  async semantic(
    project: string,
    vector: Float32Array | null,
    model: string | null,
    query: string | null,
    limit: number,
  ): Promise<{ memories: MemoryEntry[]; by: "vector" | "text" } | Failure> {
    await this.enter(project);
    if (vector !== null) {
      const problem = this.queryProblem(vector, model);
      if (problem !== null) return problem;
    }
    const text = () => ({ memories: query === null ? [] : this.hitsToEntries(this.textRank(query, limit)), by: "text" as const });
    if (this.vectorCount() === 0) return text();
    const queryVector = await this.queryVector(query, vector);
    if (queryVector === null) return text();
    return { memories: this.hitsToEntries(await this.vectorRank(queryVector, limit)), by: "vector" };
  }

  /** Both ranked lists of a hybrid search (`depth` deep), for the client to fuse. */
  async hybrid(
    project: string,
    query: string,
    vector: Float32Array | null,
    model: string | null,
    depth: number,
  ): Promise<{ text: { id: string; score: number }[]; semantic: { id: string; score: number }[]; memories: MemoryEntry[] } | Failure> {
    await this.enter(project);
    if (vector !== null) {
      const problem = this.queryProblem(vector, model);
      if (problem !== null) return problem;
    }
    const text = this.textRank(query, depth);
    let semantic: Hit[] = [];
    if (this.vectorCount() > 0) {
      const queryVector = await this.queryVector(query, vector);
      if (queryVector !== null) semantic = await this.vectorRank(queryVector, depth);
    }
    const rows = this.rowsOf([...new Set([...text, ...semantic].map((hit) => hit.seq))]);
    const named = (hits: Hit[]) =>
      hits.flatMap((hit) => {
        const row = rows.get(hit.seq);
        return row === undefined ? [] : [{ id: row.id, score: hit.score }];
      });
    const memories = [...rows.values()].map((row) => rowToEntry(row));
    return { text: named(text), semantic: named(semantic), memories };
  }

  // -- backfill -------------------------------------------------------------------

  /** The oldest entries without a vector. */
  async unembedded(project: string, limit: number): Promise<{ id: string; content: string }[]> {
    await this.enter(project);
    const rows = this.sql.exec<{ id: string; content: string }>(
      "SELECT id, content FROM memories WHERE has_embedding = 0 ORDER BY seq LIMIT ?",
      limit,
    );
    return rows.toArray().map((row) => ({ id: row.id, content: row.content }));
  }

  /** Store vectors for existing entries (made by `model`); how many entries got one. */
  async fillVectors(project: string, items: { id: string; embedding: Float32Array }[], model: string): Promise<number | Failure> {
    await this.enter(project);
    const result = this.ctx.storage.transactionSync(() => {
      const before = this.space();
      let space = before;
      for (const [i, item] of items.entries()) {
        const problem = this.spaceProblem(space, item.embedding.length, model);
        if (problem !== null) return invalid(`vectors.${i}.embedding`, problem);
        space = this.adopt(space, item.embedding.length, model);
      }
      const written: [number, Float32Array][] = [];
      for (const item of items) {
        const row = this.sql.exec<{ seq: number }>("UPDATE memories SET has_embedding = 1 WHERE id = ? RETURNING seq", item.id).toArray()[0];
        if (row === undefined) continue; // deleted meanwhile
        this.sql.exec(q.UPSERT_VECTOR, Number(row.seq), model, toBlob(item.embedding));
        written.push([Number(row.seq), item.embedding]);
      }
      this.saveSpace(before, space);
      return written;
    });
    if (isFailure(result)) return result;
    this.afterWrite(result, []);
    return result.length;
  }

  /** Embed up to `batchSize` entries lacking vectors with Workers AI; how many (0 without it). */
  async backfillWithAi(project: string, batchSize: number): Promise<number | Failure> {
    await this.enter(project);
    const ai = aiOf(this.env);
    if (ai === null || !this.aiFits(this.space())) return 0;
    const todo = await this.unembedded(project, batchSize);
    if (todo.length === 0) return 0;
    const vectors = await embedTexts(
      ai,
      todo.map((item) => item.content),
    );
    const filled = await this.fillVectors(
      project,
      todo.map((item, i) => ({ id: item.id, embedding: vectors[i] as Float32Array })),
      AI_MODEL,
    );
    return isFailure(filled) ? filled : todo.length;
  }

  // -- the Vectorize outbox --------------------------------------------------------------

  private scheduleFlush(delayMs: number): void {
    const at = Date.now() + delayMs;
    this.ctx.storage
      .getAlarm()
      .then((current) => (current === null || current > at ? this.ctx.storage.setAlarm(at) : undefined))
      .catch((err: unknown) => console.error("scheduling the Vectorize flush failed:", err));
  }

  override async alarm(): Promise<void> {
    const project = this.meta("project");
    if (typeof project !== "string" || vectorIndexOf(this.env) === null) return;
    await this.enter(project);
    let remaining = 0;
    try {
      remaining = await this.flush();
    } catch (err) {
      console.error("flushing vectors to Vectorize failed; retrying later:", err);
      remaining = 1;
    }
    if (remaining > 0) {
      this.backoffMs = Math.min(FLUSH_BACKOFF_MAX_MS, this.backoffMs * 2);
      await this.ctx.storage.setAlarm(Date.now() + this.backoffMs);
    } else {
      this.backoffMs = FLUSH_DELAY_MS;
    }
  }

  /**
   * Send unsent vectors and deletes to Vectorize, then look for sent ones
   * there: a vector Vectorize returns (with these values) is no longer merged
   * by hand; a delete it no longer returns is forgotten. How many remain.
   */
  private async flush(): Promise<number> {
    const bound = vectorIndexOf(this.env);
    if (bound === null) return 0;
    const now = Date.now();
    const unsent = this.sql.exec<{ seq: number; vector: ArrayBuffer }>("SELECT seq, vector FROM vectors WHERE sync = 0").toArray();
    for (const chunk of chunks(unsent, VECTORIZE_BATCH)) {
      const list = JSON.stringify(chunk.map((row) => Number(row.seq)));
      this.sql.exec(`UPDATE vectors SET sync = 1, sent_at = ? WHERE sync = 0 AND seq IN (${q.SEQS_IN})`, now, list);
      try {
        await bound.api.upsert(
          chunk.map((row) => ({ id: vectorId(this.key, Number(row.seq)), values: fromBlob(row.vector), namespace: this.namespace })),
        );
      } catch (err) {
        this.sql.exec(`UPDATE vectors SET sync = 0, sent_at = NULL WHERE sync = 1 AND sent_at = ? AND seq IN (${q.SEQS_IN})`, now, list);
        throw err;
      }
    }
    const doomed = this.sql.exec<{ vid: string }>("SELECT vid FROM vectorize_deletes WHERE sync = 0").toArray();
    for (const chunk of chunks(doomed, VECTORIZE_BATCH)) {
      const vids = chunk.map((row) => row.vid);
      await bound.api.deleteByIds(vids);
      this.sql.exec(`UPDATE vectorize_deletes SET sync = 1, sent_at = ? WHERE vid IN (SELECT value FROM json_each(?))`, now, JSON.stringify(vids));
    }
    const sent = this.sql
      .exec<{ seq: number; vector: ArrayBuffer; sent_at: number }>(
        "SELECT seq, vector, sent_at FROM vectors WHERE sync = 1 AND sent_at <= ?",
        now - CONFIRM_AFTER_MS,
      )
      .toArray();
    for (const chunk of chunks(sent, VECTORIZE_GET_BATCH)) {
      const shown = new Map((await bound.api.getByIds(chunk.map((row) => vectorId(this.key, Number(row.seq))))).map((v) => [v.id, v.values]));
      for (const row of chunk) {
        const values = shown.get(vectorId(this.key, Number(row.seq)));
        if (values !== undefined && sameValues(values, fromBlob(row.vector))) {
          this.sql.exec("UPDATE vectors SET sync = 2 WHERE seq = ? AND sync = 1 AND sent_at = ?", Number(row.seq), row.sent_at);
        }
      }
    }
    const gone = this.sql
      .exec<{ vid: string }>("SELECT vid FROM vectorize_deletes WHERE sync = 1 AND sent_at <= ?", now - CONFIRM_AFTER_MS)
      .toArray();
    for (const chunk of chunks(gone, VECTORIZE_GET_BATCH)) {
      const still = new Set((await bound.api.getByIds(chunk.map((row) => row.vid))).map((v) => v.id));
      for (const row of chunk) if (!still.has(row.vid)) this.sql.exec("DELETE FROM vectorize_deletes WHERE vid = ? AND sync = 1", row.vid);
    }
    const left = this.sql.exec(
      "SELECT (SELECT count(*) FROM vectors WHERE sync < 2) + (SELECT count(*) FROM vectorize_deletes) AS n",
    );
    return Number(left.one().n);
  }
}
