/**
 * The SQL of a project's memory (the `MemoryDO`'s own SQLite): its schema and
 * the statements the store runs. Columns are those of jetpack-cass's
 * `memories` table (times as epoch milliseconds, metadata as JSON text), so
 * local and edge rows map one to one.
 *
 * - `memories.seq`: AUTOINCREMENT, never reused: the FTS rowid, the key of the
 *   vector, the keyset of list pages, and (with the project) the id in Vectorize.
 * - `memories_fts`: contentless FTS5, `porter unicode61` as in jetpack-cass; its
 *   BM25 statistics are this project's alone (one table per project).
 * - `vectors`: the float32 vector of a memory and the model that made it; the
 *   built-in index loads them into memory, the Vectorize path mirrors them
 *   there (`sync`: 0 to send, 1 sent, 2 seen in Vectorize).
 * - `vectorize_deletes`: ids to delete from Vectorize and not yet seen gone.
 * - `meta`: the schema version, the project, and the project's vector space
 *   (`embedding_model`, `dimensions`).
 */

/** Bump with a new entry of {@link MIGRATIONS}. */
export const SCHEMA_VERSION = 1;

/** Schema steps, in order: step `i` brings version `i` to `i + 1`. */
export const MIGRATIONS: readonly string[][] = [
  [
    `CREATE TABLE memories (
       seq INTEGER PRIMARY KEY AUTOINCREMENT,
       id TEXT NOT NULL UNIQUE,
       type TEXT NOT NULL,
       content TEXT NOT NULL,
       importance REAL NOT NULL,
       metadata TEXT NOT NULL DEFAULT '{}',
       has_embedding INTEGER NOT NULL DEFAULT 0,
       created_at INTEGER NOT NULL,
       last_accessed INTEGER NOT NULL,
       access_count INTEGER NOT NULL DEFAULT 0,
       version INTEGER NOT NULL DEFAULT 1
     )`,
    "CREATE INDEX memories_by_type ON memories(type, importance DESC, last_accessed DESC, seq DESC)",
    "CREATE INDEX memories_by_created ON memories(created_at, seq)",
    "CREATE INDEX memories_unembedded ON memories(seq) WHERE has_embedding = 0",
    `CREATE VIRTUAL TABLE memories_fts USING fts5(
       content, content='', contentless_delete=1, tokenize='porter unicode61 remove_diacritics 2')`,
    `CREATE TABLE vectors (
       seq INTEGER PRIMARY KEY,
       model TEXT NOT NULL,
       vector BLOB NOT NULL,
       sync INTEGER NOT NULL DEFAULT 0,
       sent_at INTEGER
     )`,
    "CREATE INDEX vectors_unsynced ON vectors(sync) WHERE sync < 2",
    "CREATE TABLE vectorize_deletes (vid TEXT PRIMARY KEY, sync INTEGER NOT NULL DEFAULT 0, sent_at INTEGER)",
  ],
];

export const META_TABLE = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)";

/** Columns `rows.rowToEntry` reads, from `memories m LEFT JOIN vectors v`. */
export const ENTRY = `m.seq, m.id, m.type, m.content, m.importance, m.metadata, m.has_embedding,
  v.model AS embedding_model, m.created_at, m.last_accessed, m.access_count, m.version`;
export const FROM = "memories m LEFT JOIN vectors v ON v.seq = m.seq";

export const INSERT_MEMORY = `INSERT INTO memories
  (id, type, content, importance, metadata, has_embedding, created_at, last_accessed)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`;

export const INDEX_TEXT = "INSERT INTO memories_fts(rowid, content) SELECT seq, content FROM memories WHERE seq >= ?";

export const UPSERT_VECTOR = `INSERT INTO vectors (seq, model, vector, sync) VALUES (?, ?, ?, 0)
  ON CONFLICT (seq) DO UPDATE SET model = excluded.model, vector = excluded.vector, sync = 0, sent_at = NULL`;

/** Ids among a JSON array that exist. */
export const EXISTING_IDS = "SELECT id FROM memories WHERE id IN (SELECT value FROM json_each(?))";

/** Rows with these seqs (a JSON array). */
export const SEQS_IN = "SELECT value AS seq FROM json_each(?)";

export const RETRIEVE = `UPDATE memories SET access_count = access_count + 1,
  last_accessed = max(?, last_accessed + 1), version = version + 1 WHERE id = ? RETURNING seq`;

export const SET_IMPORTANCE = "UPDATE memories SET importance = ?, version = version + 1 WHERE id = ? RETURNING seq";

export const BM25 = `SELECT rowid AS seq, bm25(memories_fts) AS score FROM memories_fts
  WHERE memories_fts MATCH ? ORDER BY rank LIMIT ?`;
