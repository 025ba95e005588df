/**
 * Stand-ins for Vectorize and Workers AI, which have no local emulator. They
 * are exported by the Worker but bound only by a test-only build option
 * (`features={"memory_fakes": {...}}`, see `_edge.py`), under names that say
 * what they are: `FAKE_VECTORIZE`, `FAKE_AI`. Each speaks its service's API
 * (the methods and shapes of `Vectorize` and of `Ai.run` for an embedding
 * model), so the code under test is the code that runs against the real ones.
 *
 * `FakeVectorize` keeps Vectorize's eventual consistency: an upsert or delete
 * is a mutation that becomes visible to queries, `getByIds` and `describe`
 * only `FAKE_VECTORIZE_DELAY_MS` after it was accepted, in order. It also
 * refuses what Vectorize refuses (other dimensions, ids or namespaces over 64
 * bytes, batches over 1,000, topK over 100, or over 20 with values or metadata).
 */
import { DurableObject } from "cloudflare:workers";
import { AI_MODEL } from "./vectorize";
import { cosine, fromBlob, toBlob } from "./vectors";

interface FakeEnv {
  readonly FAKE_VECTORIZE_DELAY_MS?: string;
  readonly JETPACK_VECTORIZE_DIMENSIONS?: string;
}

const MAX_ID_BYTES = 64;
const MAX_BATCH = 1000;
const MAX_TOP_K = 100;
const MAX_TOP_K_WITH_DATA = 20;

function bytes(text: string): number {
  return new TextEncoder().encode(text).length;
}

interface QueuedRow extends Record<string, SqlStorageValue> {
  n: number;
  mutation: string;
  visible_at: number;
  op: string;
  id: string;
  namespace: string | null;
  vals: ArrayBuffer | null;
  metadata: string | null;
}

interface StoredRow extends Record<string, SqlStorageValue> {
  id: string;
  namespace: string | null;
  vals: ArrayBuffer;
  metadata: string | null;
}

/** A Vectorize index (cosine metric) inside workerd, eventually consistent. Test builds only. */
export class FakeVectorize extends DurableObject<FakeEnv> {
  private readonly sql: SqlStorage;
  private readonly dimensions: number;
  private readonly delayMs: number;

  constructor(ctx: DurableObjectState, env: FakeEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.dimensions = Number(env.JETPACK_VECTORIZE_DIMENSIONS ?? "384");
    this.delayMs = Number(env.FAKE_VECTORIZE_DELAY_MS ?? "2000");
    this.sql.exec(`CREATE TABLE IF NOT EXISTS vectors (
      id TEXT PRIMARY KEY, namespace TEXT, vals BLOB NOT NULL, metadata TEXT)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS queue (
      n INTEGER PRIMARY KEY AUTOINCREMENT, mutation TEXT NOT NULL, visible_at INTEGER NOT NULL,
      op TEXT NOT NULL, id TEXT NOT NULL, namespace TEXT, vals BLOB, metadata TEXT)`);
    this.sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)");
  }

  /** Apply the mutations whose delay has passed, oldest first. */
  private settle(): void {
    const now = Date.now();
    const due = this.sql.exec<QueuedRow>("SELECT * FROM queue WHERE visible_at <= ? ORDER BY n", now).toArray();
    if (due.length === 0) return;
    this.ctx.storage.transactionSync(() => {
      for (const row of due) {
        if (row.op === "delete") {
          this.sql.exec("DELETE FROM vectors WHERE id = ?", row.id);
        } else if (row.op === "upsert" || !this.sql.exec("SELECT 1 FROM vectors WHERE id = ?", row.id).toArray().length) {
          this.sql.exec(
            "INSERT OR REPLACE INTO vectors (id, namespace, vals, metadata) VALUES (?, ?, ?, ?)",
            row.id,
            row.namespace,
            row.vals,
            row.metadata,
          );
        }
        this.sql.exec("DELETE FROM queue WHERE n = ?", row.n);
      }
      const last = due[due.length - 1] as QueuedRow;
      this.sql.exec("INSERT OR REPLACE INTO meta VALUES ('processed_at', ?), ('processed_mutation', ?)", last.visible_at, last.mutation);
    });
  }

  private enqueue(op: string, items: { id: string; namespace?: string; values?: Float32Array; metadata?: unknown }[]): VectorizeAsyncMutation {
    const mutationId = crypto.randomUUID();
    const visible = Date.now() + this.delayMs;
    this.ctx.storage.transactionSync(() => {
      for (const item of items) {
        this.sql.exec(
          "INSERT INTO queue (mutation, visible_at, op, id, namespace, vals, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
          mutationId,
          visible,
          op,
          item.id,
          item.namespace ?? null,
          item.values === undefined ? null : toBlob(item.values),
          item.metadata === undefined ? null : JSON.stringify(item.metadata),
        );
      }
    });
    return { mutationId };
  }

  private checked(vectors: VectorizeVector[], what: string): { id: string; namespace?: string; values: Float32Array; metadata?: unknown }[] {
    if (vectors.length > MAX_BATCH) {
      throw new Error(`VECTOR_${what}_ERROR (code = 40007): too many vectors in one batch (${vectors.length} > ${MAX_BATCH})`);
    }
    return vectors.map((vector) => {
      if (typeof vector.id !== "string" || vector.id.length === 0 || bytes(vector.id) > MAX_ID_BYTES) {
        throw new Error(`VECTOR_${what}_ERROR (code = 40009): id must be 1-${MAX_ID_BYTES} bytes`);
      }
      if (vector.namespace !== undefined && bytes(vector.namespace) > MAX_ID_BYTES) {
        throw new Error(`VECTOR_${what}_ERROR (code = 40010): namespace must be at most ${MAX_ID_BYTES} bytes`);
      }
      const values = Float32Array.from(vector.values);
      if (values.length !== this.dimensions) {
        throw new Error(
          `VECTOR_${what}_ERROR (code = 40008): vector ${vector.id} has ${values.length} dimensions; the index has ${this.dimensions}`,
        );
      }
      if (!values.every((v) => Number.isFinite(v))) {
        throw new Error(`VECTOR_${what}_ERROR (code = 40008): vector ${vector.id} has a non-finite value`);
      }
      const out: { id: string; namespace?: string; values: Float32Array; metadata?: unknown } = { id: vector.id, values };
      if (vector.namespace !== undefined) out.namespace = vector.namespace;
      if (vector.metadata !== undefined) out.metadata = vector.metadata;
      return out;
    });
  }

  async upsert(vectors: VectorizeVector[]): Promise<VectorizeAsyncMutation> {
    return this.enqueue("upsert", this.checked(vectors, "UPSERT"));
  }

  async insert(vectors: VectorizeVector[]): Promise<VectorizeAsyncMutation> {
    return this.enqueue("insert", this.checked(vectors, "INSERT"));
  }

  async deleteByIds(ids: string[]): Promise<VectorizeAsyncMutation> {
    if (ids.length > MAX_BATCH) throw new Error(`VECTOR_DELETE_ERROR (code = 40007): too many ids (${ids.length} > ${MAX_BATCH})`);
    return this.enqueue("delete", ids.map((id) => ({ id })));
  }

  async getByIds(ids: string[]): Promise<VectorizeVector[]> {
    this.settle();
    const out: VectorizeVector[] = [];
    for (const id of ids) {
      const row = this.sql.exec<StoredRow>("SELECT * FROM vectors WHERE id = ?", id).toArray()[0];
      if (row === undefined) continue;
      const vector: VectorizeVector = { id: row.id, values: [...fromBlob(row.vals)] };
      if (row.namespace !== null) vector.namespace = row.namespace;
      if (row.metadata !== null) vector.metadata = JSON.parse(row.metadata) as Record<string, VectorizeVectorMetadata>;
      out.push(vector);
    }
    return out;
  }

  async query(vector: Float32Array | number[], options: VectorizeQueryOptions = {}): Promise<VectorizeMatches> {
    this.settle();
    const topK = options.topK ?? 5;
    const withData = options.returnValues === true || options.returnMetadata === true || options.returnMetadata === "all";
    const cap = withData ? MAX_TOP_K_WITH_DATA : MAX_TOP_K;
    if (!Number.isInteger(topK) || topK < 1 || topK > cap) {
      throw new Error(`VECTOR_QUERY_ERROR (code = 40006): topK must be 1-${cap}${withData ? " when returning values or metadata" : ""}`);
    }
    if (vector.length !== this.dimensions) {
      throw new Error(`VECTOR_QUERY_ERROR (code = 40008): the query has ${vector.length} dimensions; the index has ${this.dimensions}`);
    }
    const rows =
      options.namespace === undefined
        ? this.sql.exec<StoredRow>("SELECT * FROM vectors").toArray()
        : this.sql.exec<StoredRow>("SELECT * FROM vectors WHERE namespace = ?", options.namespace).toArray();
    const scored = rows
      .map((row) => ({ row, values: fromBlob(row.vals) }))
      .map(({ row, values }) => ({ row, values, score: cosine(vector, values) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, topK);
    const matches: VectorizeMatch[] = scored.map(({ row, values, score }) => {
      const match: VectorizeMatch = { id: row.id, score };
      if (row.namespace !== null) match.namespace = row.namespace;
      if (options.returnValues === true) match.values = [...values];
      if (withData || options.returnMetadata === "indexed") {
        if (row.metadata !== null) match.metadata = JSON.parse(row.metadata) as Record<string, VectorizeVectorMetadata>;
      }
      return match;
    });
    return { matches, count: matches.length };
  }

  async describe(): Promise<VectorizeIndexInfo> {
    this.settle();
    const count = Number(this.sql.exec("SELECT count(*) AS n FROM vectors").one().n);
    const meta = new Map(
      this.sql.exec<{ key: string; value: SqlStorageValue }>("SELECT key, value FROM meta").toArray().map((r) => [r.key, r.value]),
    );
    return {
      vectorCount: count,
      dimensions: this.dimensions,
      processedUpToDatetime: Number(meta.get("processed_at") ?? 0),
      processedUpToMutation: (meta.get("processed_mutation") ?? 0) as number,
    };
  }
}

const AI_DIMENSIONS = 384;
const AI_MAX_TEXTS = 100;
const WORD = /[\p{L}\p{N}]+/gu;

/** FNV-1a, 32 bits. */
function fnv(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * Workers AI answering `run("@cf/baai/bge-small-en-v1.5", {text})` as the real
 * model does in shape (`{shape: [n, 384], data, pooling: "mean"}`). Its vectors
 * are a deterministic hash of the words (texts sharing words are close), not
 * the model's: a stand-in for wiring, never for search quality. Test builds only.
 */
export class FakeWorkersAI extends DurableObject {
  async run(model: string, inputs: { text?: string | string[] }): Promise<{ shape: number[]; data: number[][]; pooling: string }> {
    if (model !== AI_MODEL) throw new Error(`AiError: 5007: No such model ${model} or task (fake Workers AI)`);
    const texts = typeof inputs.text === "string" ? [inputs.text] : inputs.text;
    if (!Array.isArray(texts) || texts.length === 0 || texts.length > AI_MAX_TEXTS) {
      throw new Error(`AiError: 3010: Invalid or incomplete input: text must hold 1-${AI_MAX_TEXTS} strings`);
    }
    const data = texts.map((text) => {
      const vector = new Array<number>(AI_DIMENSIONS).fill(0);
      for (const word of text.toLowerCase().match(WORD) ?? []) {
        const h = fnv(word);
        vector[h % AI_DIMENSIONS] = (vector[h % AI_DIMENSIONS] ?? 0) + ((h >>> 16) & 1 ? 1 : -1);
      }
      if (!vector.some((v) => v !== 0)) vector[0] = 1;
      const norm = Math.sqrt(vector.reduce((a, v) => a + v * v, 0));
      return vector.map((v) => v / norm);
    });
    return { shape: [texts.length, AI_DIMENSIONS], data, pooling: "mean" };
  }
}
