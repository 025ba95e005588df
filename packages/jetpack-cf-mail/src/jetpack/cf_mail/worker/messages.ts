/**
 * The mailbox's storage: every SQL statement the MailboxDO runs, on the
 * object's own SQLite (one object per project, so no project column). Messages
 * carry a per-project sequence number from a counter that never goes back
 * (retention deletes rows, never numbers).
 */
import { toIso } from "@jetpack/gateway";
import type { AgentPresence, DeadLetter, Message } from "./schemas";

/** A message as stored, but for its seq. */
export interface MessageFields {
  id: string;
  type: string;
  from_agent: string;
  to_agent: string | null;
  payload: string;
  ts: number;
  correlation_id: string | null;
  ack_required: number;
}

export interface MessageRow extends MessageFields, Record<string, SqlStorageValue> {
  seq: number;
}

const COLUMNS = "seq, id, type, from_agent, to_agent, payload, ts, correlation_id, ack_required";

/** A stored row as the wire's Message. */
export function toMessage(row: MessageRow): Message {
  return {
    id: row.id,
    type: row.type as Message["type"],
    from_agent: row.from_agent,
    to_agent: row.to_agent,
    payload: JSON.parse(row.payload) as Record<string, unknown>,
    timestamp: toIso(row.ts) ?? "",
    correlation_id: row.correlation_id,
    ack_required: row.ack_required === 1,
    seq: row.seq,
  };
}

/** Which broadcast types a query wants: all, these, or all but these. */
export type TypeFilter = { all: true } | { only: readonly string[] } | { except: readonly string[] };

function typeClause(filter: TypeFilter, param: string): { sql: string; value: string | number } {
  if ("all" in filter) return { sql: `${param} = 1`, value: 1 };
  if ("only" in filter) return { sql: `type IN (SELECT value FROM json_each(${param}))`, value: JSON.stringify(filter.only) };
  return { sql: `type NOT IN (SELECT value FROM json_each(${param}))`, value: JSON.stringify(filter.except) };
}

export class MailStore {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(`
      CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
        from_agent TEXT NOT NULL, to_agent TEXT, payload TEXT NOT NULL, ts INTEGER NOT NULL,
        correlation_id TEXT, ack_required INTEGER NOT NULL, acked_at INTEGER);
      CREATE INDEX IF NOT EXISTS messages_inbox ON messages (to_agent, seq) WHERE to_agent IS NOT NULL;
      CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts);
      CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS cursors (agent_id TEXT PRIMARY KEY, seq INTEGER NOT NULL,
        updated_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS presence (agent_id TEXT PRIMARY KEY, status TEXT NOT NULL,
        last_seen INTEGER NOT NULL, info TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT,
        agent_id TEXT NOT NULL, message TEXT NOT NULL, handler TEXT NOT NULL, error TEXT NOT NULL,
        attempts INTEGER NOT NULL, failed_at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS dead_letters_agent ON dead_letters (agent_id, id);
      CREATE TABLE IF NOT EXISTS late_subs (sid TEXT PRIMARY KEY);
    `);
  }

  counter(name: string): number {
    const row = this.sql.exec<{ value: number }>("SELECT value FROM counters WHERE name = ?", name).toArray()[0];
    return row?.value ?? 0;
  }

  setCounter(name: string, value: number): void {
    this.sql.exec(
      "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
      name,
      value,
    );
  }

  /** The last seq given out (0 for a new mailbox). */
  lastSeq(): number {
    return this.counter("seq");
  }

  // -- messages -------------------------------------------------------------------------

  find(id: string): MessageRow | undefined {
    return this.sql.exec<MessageRow>(`SELECT ${COLUMNS} FROM messages WHERE id = ?`, id).toArray()[0];
  }

  /** Store a message under the next seq; the row as stored. */
  insert(fields: MessageFields): MessageRow {
    const row: MessageRow = { ...fields, seq: this.lastSeq() + 1 };
    this.setCounter("seq", row.seq);
    this.sql.exec(
      `INSERT INTO messages (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      row.seq,
      row.id,
      row.type,
      row.from_agent,
      row.to_agent,
      row.payload,
      row.ts,
      row.correlation_id,
      row.ack_required,
    );
    return row;
  }

  inbox(agent: string, limit: number, includeAcked: boolean): MessageRow[] {
    const acked = includeAcked ? "" : " AND acked_at IS NULL";
    return this.sql
      .exec<MessageRow>(`SELECT ${COLUMNS} FROM messages WHERE to_agent = ?${acked} ORDER BY seq LIMIT ?`, agent, limit)
      .toArray();
  }

  /** Acknowledge a direct message to `agent` (again is fine); false if unknown or not theirs. */
  acknowledge(agent: string, id: string, now: number): boolean {
    return (
      this.sql
        .exec("UPDATE messages SET acked_at = coalesce(acked_at, ?) WHERE id = ? AND to_agent = ? RETURNING 1", now, id, agent)
        .toArray().length > 0
    );
  }

  /** Mark direct messages to `agent` read. */
  markRead(agent: string, ids: readonly string[], now: number): void {
    this.sql.exec(
      `UPDATE messages SET acked_at = ? WHERE to_agent = ? AND acked_at IS NULL
         AND id IN (SELECT value FROM json_each(?))`,
      now,
      agent,
      JSON.stringify(ids),
    );
  }

  /**
   * One replay page for `agent`: its unacknowledged direct messages after
   * `pos`, and broadcasts wanted by `types` after both `pos` and `from`, in seq order.
   */
  replayPage(agent: string, pos: number, from: number, types: TypeFilter, limit: number): MessageRow[] {
    const wanted = typeClause(types, "?4");
    return this.sql
      .exec<MessageRow>(
        `SELECT ${COLUMNS} FROM messages WHERE to_agent = ?1 AND acked_at IS NULL AND seq > ?2
         UNION ALL
         SELECT ${COLUMNS} FROM messages WHERE to_agent IS NULL AND seq > max(?2, ?3) AND ${wanted.sql}
         ORDER BY seq LIMIT ?5`,
        agent,
        pos,
        from,
        wanted.value,
        limit,
      )
      .toArray();
  }

  /** The newest `limit` broadcasts wanted by `types` with `from < seq <= upto`, in seq order. */
  broadcasts(from: number, upto: number, types: TypeFilter, limit: number): MessageRow[] {
    const wanted = typeClause(types, "?3");
    return this.sql
      .exec<MessageRow>(
        `SELECT * FROM (SELECT ${COLUMNS} FROM messages WHERE to_agent IS NULL AND seq > ?1 AND seq <= ?2
           AND ${wanted.sql} ORDER BY seq DESC LIMIT ?4) ORDER BY seq`,
        from,
        upto,
        wanted.value,
        limit,
      )
      .toArray();
  }

  // -- cursors, presence, dead letters, late subscribers ----------------------------------

  cursor(agent: string): number | null {
    return this.sql.exec<{ seq: number }>("SELECT seq FROM cursors WHERE agent_id = ?", agent).toArray()[0]?.seq ?? null;
  }

  /** Move `agent`'s cursor forward (never back, never past the last seq). */
  saveCursor(agent: string, seq: number, now: number): void {
    this.sql.exec(
      `INSERT INTO cursors (agent_id, seq, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (agent_id) DO UPDATE SET seq = max(seq, excluded.seq), updated_at = excluded.updated_at`,
      agent,
      Math.min(seq, this.lastSeq()),
      now,
    );
  }

  seen(agent: string, status: string, info: Record<string, unknown>, now: number): void {
    this.sql.exec(
      `INSERT INTO presence (agent_id, status, last_seen, info) VALUES (?, ?, ?, ?)
       ON CONFLICT (agent_id) DO UPDATE SET status = excluded.status, last_seen = excluded.last_seen,
         info = excluded.info`,
      agent,
      status,
      now,
      JSON.stringify(info),
    );
  }

  /** Agents by id; silent longer than `windowMs` (or reporting offline) → offline. */
  agents(now: number, windowMs: number, includeOffline: boolean): AgentPresence[] {
    const rows = this.sql
      .exec<{ agent_id: string; status: string; last_seen: number; info: string }>(
        "SELECT agent_id, status, last_seen, info FROM presence ORDER BY agent_id",
      )
      .toArray();
    const out: AgentPresence[] = [];
    for (const row of rows) {
      const online = now - row.last_seen <= windowMs && row.status !== "offline";
      if (!online && !includeOffline) continue;
      out.push({
        agent_id: row.agent_id,
        status: (online ? row.status : "offline") as AgentPresence["status"],
        last_seen: toIso(row.last_seen) ?? "",
        online,
        info: JSON.parse(row.info) as Record<string, unknown>,
      });
    }
    return out;
  }

  addDeadLetter(agent: string, letter: Omit<DeadLetter, "id" | "failed_at">, now: number): DeadLetter {
    const { id } = this.sql
      .exec<{ id: number }>(
        `INSERT INTO dead_letters (agent_id, message, handler, error, attempts, failed_at)
         VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
        agent,
        JSON.stringify(letter.message),
        letter.handler,
        letter.error,
        letter.attempts,
        now,
      )
      .one();
    return { ...letter, id, failed_at: toIso(now) ?? "" };
  }

  deadLetters(agent: string, limit: number): DeadLetter[] {
    return this.sql
      .exec<{ id: number; message: string; handler: string; error: string; attempts: number; failed_at: number }>(
        "SELECT id, message, handler, error, attempts, failed_at FROM dead_letters WHERE agent_id = ? ORDER BY id LIMIT ?",
        agent,
        limit,
      )
      .toArray()
      .map((r) => ({ ...r, message: JSON.parse(r.message) as Message, failed_at: toIso(r.failed_at) ?? "" }));
  }

  lateSubscribers(): string[] {
    return this.sql.exec<{ sid: string }>("SELECT sid FROM late_subs").toArray().map((r) => r.sid);
  }

  addLateSubscriber(sid: string): void {
    this.sql.exec("INSERT OR IGNORE INTO late_subs (sid) VALUES (?)", sid);
  }

  dropLateSubscriber(sid: string): void {
    this.sql.exec("DELETE FROM late_subs WHERE sid = ?", sid);
  }

  // -- retention -------------------------------------------------------------------------

  /**
   * Delete up to `batch` messages and dead letters, and the presence rows and
   * cursors, older than `cutoff`. `more`: a batch was full (come back soon);
   * `left`: whether anything is stored at all.
   */
  sweep(cutoff: number, batch: number): { more: boolean; left: boolean } {
    const messages = this.sql
      .exec("DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE ts < ? ORDER BY ts LIMIT ?) RETURNING 1", cutoff, batch)
      .toArray().length;
    const letters = this.sql
      .exec(
        "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE failed_at < ? ORDER BY id LIMIT ?) RETURNING 1",
        cutoff,
        batch,
      )
      .toArray().length;
    this.sql.exec("DELETE FROM presence WHERE last_seen < ?", cutoff);
    this.sql.exec("DELETE FROM cursors WHERE updated_at < ?", cutoff);
    const left = this.sql
      .exec<{ n: number }>(
        `SELECT EXISTS (SELECT 1 FROM messages) OR EXISTS (SELECT 1 FROM dead_letters)
           OR EXISTS (SELECT 1 FROM presence) OR EXISTS (SELECT 1 FROM cursors) AS n`,
      )
      .one().n;
    return { more: messages === batch || letters === batch, left: left === 1 };
  }
}
