/**
 * MailboxDO: one per project (`idFromName(project)`). It owns the project's
 * messages (with a per-project sequence number), the agents' cursors, presence
 * and dead letters, all in the object's SQLite storage, and the agents'
 * WebSockets through the Hibernation API: an idle socket costs nothing and
 * stays open while the object is evicted from memory.
 *
 * Nothing that must survive lives in instance fields. A socket's agent and
 * first subscriptions are its tags (`a:<agent>`, `t:<type>`), its current
 * subscriptions are its attachment; a socket whose subscriptions changed after
 * it connected is listed in the `late_subs` table, so a broadcast finds it
 * without reading every socket.
 *
 * Routing: a broadcast goes to the sockets subscribed to its type (or `*`);
 * a direct message to every socket of its recipient, and stays in the inbox
 * until acknowledged (or retention). A socket that connects with
 * `since=<seq>` is sent what it missed, in order, before anything live
 * (`from=<seq>`: broadcasts only after that one).
 */
import { DurableObject } from "cloudflare:workers";
import { type Bindings, newId, toIso } from "@jetpack/gateway";
import { type AgentPresence, ClientFrame, type DeadLetter, type Message, type Outgoing } from "./schemas";
import { AuditBuffer, parseFrame, refuse, send, type Speaker, speakerOf } from "./sockets";

const DAY_MS = 86_400_000;
/** Messages, dead letters, cursors and presence rows older than this are deleted (by alarm). */
const DEFAULT_RETENTION_MS = 7 * DAY_MS;
/** Rows deleted per table per alarm run; the alarm comes back soon while more are due. */
const SWEEP_BATCH = 1000;
/** Messages sent per replay page; the client asks for the next with a `more` frame. */
export const REPLAY_PAGE = 1000;
/** Most broadcasts replayed when a socket adds subscriptions. */
const SUB_REPLAY_MAX = 1000;
/** Sockets with more subscribed types than this are tagged `t:+` (see the attachment). */
const MAX_TYPE_TAGS = 8;
/** Above this many late subscribers, a broadcast reads every socket's attachment instead. */
const LATE_SCAN_LIMIT = 16;
/** What a socket carries across hibernation (≤ 2 KiB): its speaker and subscriptions. */
interface Attachment extends Speaker {
  types: string[];
  /** While a replay is paged: resume after `pos`; live messages wait for the next page. */
  catchup: { pos: number; from: number } | null;
}

interface MessageRow extends Record<string, SqlStorageValue> {
  seq: number;
  id: string;
  type: string;
  from_agent: string;
  to_agent: string | null;
  payload: string;
  ts: number;
  correlation_id: string | null;
  ack_required: number;
}

const COLUMNS = "seq, id, type, from_agent, to_agent, payload, ts, correlation_id, ack_required";

/** The outcome of a publish: the stored message, or a refusal for the route to answer. */
export type Published =
  | { ok: true; message: Message }
  | { ok: false; status: 409; code: string; message: string };

function toMessage(row: MessageRow): Message {
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

export class MailboxDO extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  private readonly audit: AuditBuffer;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.audit = new AuditBuffer(ctx, env.DB, "/api/mail/subscribe");
    this.sql.exec(`
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

  private get retentionMs(): number {
    const ms = Number(this.env.JETPACK_MAIL_RETENTION_MS ?? "");
    return Number.isFinite(ms) && ms > 0 ? ms : DEFAULT_RETENTION_MS;
  }

  private counter(name: string): number {
    const row = this.sql.exec<{ value: number }>("SELECT value FROM counters WHERE name = ?", name).toArray()[0];
    return row?.value ?? 0;
  }

  private setCounter(name: string, value: number): void {
    this.sql.exec(
      "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
      name,
      value,
    );
  }

  /** The retention sweep is due within the retention period whenever anything is stored. */
  private ensureSweep(now: number): void {
    if (this.counter("alarm_at") > 0) return;
    const at = now + Math.min(this.retentionMs, 3_600_000);
    this.setCounter("alarm_at", at);
    void this.ctx.storage.setAlarm(at);
  }

  // -- messages -------------------------------------------------------------------------

  /**
   * Store a message from `agent` and send it to its live recipients. A repeat
   * of an id already stored for the same sender, type and recipient is the
   * same message (a retried or replayed publish): it is answered as stored and
   * not delivered again; the id of another message is a conflict.
   */
  publish(agent: string, out: Outgoing, socket: Attachment | null): Published {
    const now = Date.now();
    const id = out.id;
    const to = out.to_agent ?? null;
    const existing = this.sql.exec<MessageRow>(`SELECT ${COLUMNS} FROM messages WHERE id = ?`, id).toArray()[0];
    if (existing !== undefined) {
      if (existing.from_agent === agent && existing.type === out.type && existing.to_agent === to) {
        return { ok: true, message: toMessage(existing) };
      }
      return { ok: false, status: 409, code: "conflict", message: `message id ${JSON.stringify(id)} is taken` };
    }
    const seq = this.counter("seq") + 1;
    this.setCounter("seq", seq);
    const row: MessageRow = {
      seq,
      id,
      type: out.type,
      from_agent: agent,
      to_agent: to,
      payload: JSON.stringify(out.payload),
      ts: now,
      correlation_id: out.correlation_id ?? null,
      ack_required: (out.ack_required ?? to !== null) ? 1 : 0,
    };
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
    this.ensureSweep(now);
    const message = toMessage(row);
    this.fanOut(message);
    if (socket !== null) this.audit.add(socket, "pub", 201);
    return { ok: true, message };
  }

  /** Send a stored message to the sockets that should have it now. */
  private fanOut(message: Message): void {
    const frame = JSON.stringify({ op: "msg", m: message });
    const targets = message.to_agent !== null ? this.agentSockets(message.to_agent) : this.subscribers(message.type);
    for (const ws of targets) {
      const att = ws.deserializeAttachment() as Attachment | null;
      if (att === null || att.catchup !== null) continue;
      if (message.to_agent === null && !att.types.includes(message.type) && !att.types.includes("*")) continue;
      send(ws, frame);
    }
  }

  private agentSockets(agent: string): WebSocket[] {
    return this.ctx.getWebSockets(`a:${agent}`);
  }

  /** Candidate sockets for a broadcast of `type` (each still checked against its attachment). */
  private subscribers(type: string): WebSocket[] {
    const late = this.sql.exec<{ sid: string }>("SELECT sid FROM late_subs").toArray();
    if (late.length > LATE_SCAN_LIMIT) return this.ctx.getWebSockets();
    const found = new Set<WebSocket>();
    for (const tag of [`t:${type}`, "t:*", "t:+", ...late.map((r) => `s:${r.sid}`)]) {
      for (const ws of this.ctx.getWebSockets(tag)) found.add(ws);
    }
    return [...found];
  }

  /** Direct messages to `agent`, oldest first. */
  inbox(agent: string, limit: number, includeAcked: boolean): Message[] {
    const acked = includeAcked ? "" : " AND acked_at IS NULL";
    return this.sql
      .exec<MessageRow>(
        `SELECT ${COLUMNS} FROM messages WHERE to_agent = ?${acked} ORDER BY seq LIMIT ?`,
        agent,
        limit,
      )
      .toArray()
      .map(toMessage);
  }

  /** Mark a direct message to `agent` handled; false if unknown or someone else's. */
  acknowledge(agent: string, messageId: string): boolean {
    const cursor = this.sql.exec(
      "UPDATE messages SET acked_at = coalesce(acked_at, ?) WHERE id = ? AND to_agent = ?",
      Date.now(),
      messageId,
      agent,
    );
    return cursor.rowsWritten > 0;
  }

  // -- presence and dead letters ---------------------------------------------------------

  /** Record a heartbeat and broadcast it as a `heartbeat` message. */
  heartbeat(agent: string, status: string, info: Record<string, unknown>): Message {
    const now = Date.now();
    this.sql.exec(
      `INSERT INTO presence (agent_id, status, last_seen, info) VALUES (?, ?, ?, ?)
       ON CONFLICT (agent_id) DO UPDATE SET status = excluded.status, last_seen = excluded.last_seen,
         info = excluded.info`,
      agent,
      status,
      now,
      JSON.stringify(info),
    );
    const out: Outgoing = { id: newId("msg"), type: "heartbeat", payload: { ...info, status } };
    const published = this.publish(agent, out, null);
    if (!published.ok) throw new Error(published.message); // a fresh id cannot conflict
    return published.message;
  }

  /** Agents by id; silent longer than `windowMs` (or reporting offline) → offline. */
  agents(windowMs: number, includeOffline: boolean): AgentPresence[] {
    const now = Date.now();
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

  /** Keep a message one of `agent`'s handlers failed on every attempt. */
  recordDeadLetter(agent: string, letter: Omit<DeadLetter, "id" | "failed_at">): DeadLetter {
    const now = Date.now();
    const row = this.sql
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
    this.ensureSweep(now);
    return { ...letter, id: row.id, failed_at: toIso(now) ?? "" };
  }

  deadLetters(agent: string, limit: number): DeadLetter[] {
    return this.sql
      .exec<{ id: number; message: string; handler: string; error: string; attempts: number; failed_at: number }>(
        "SELECT id, message, handler, error, attempts, failed_at FROM dead_letters WHERE agent_id = ? ORDER BY id LIMIT ?",
        agent,
        limit,
      )
      .toArray()
      .map((r) => ({
        id: r.id,
        message: JSON.parse(r.message) as Message,
        handler: r.handler,
        error: r.error,
        attempts: r.attempts,
        failed_at: toIso(r.failed_at) ?? "",
      }));
  }

  // -- WebSockets -------------------------------------------------------------------------

  /** Accept a socket the route authenticated (see `sockets.ts`) and send it its replay. */
  override async fetch(request: Request): Promise<Response> {
    const speaker = speakerOf(request, newId("ws"));
    if (speaker === null) return new Response("expected a WebSocket upgrade from the mail route", { status: 426 });
    const url = new URL(request.url);
    const types = (url.searchParams.get("types") ?? "").split(",").filter((t) => t.length > 0);
    const sinceText = url.searchParams.get("since");
    const pair = new WebSocketPair();
    const [client, server] = Object.values(pair) as [WebSocket, WebSocket];
    const tags = [`a:${speaker.agent}`, `s:${speaker.sid}`];
    if (types.length > MAX_TYPE_TAGS) tags.push("t:+");
    else for (const type of types) tags.push(`t:${type}`);
    this.ctx.acceptWebSocket(server, tags);
    const att: Attachment = { ...speaker, types, catchup: null };
    let pos: number;
    let from: number;
    if (sinceText === null) {
      // A fresh bus: every unacknowledged direct message, then broadcasts after its cursor.
      const cursor = this.sql
        .exec<{ seq: number }>("SELECT seq FROM cursors WHERE agent_id = ?", speaker.agent)
        .toArray()[0];
      pos = 0;
      from = cursor?.seq ?? this.counter("seq");
    } else {
      pos = Number(sinceText);
      from = Math.max(pos, Number(url.searchParams.get("from") ?? "0"));
    }
    // The broadcast floor, so a connection lost during this replay resumes it exactly.
    send(server, { op: "hello", from });
    this.replay(server, att, pos, from);
    return new Response(null, { status: 101, webSocket: client });
  }

  /**
   * Send one page of what the socket missed: its unacknowledged direct
   * messages after `pos`, and broadcasts of its types after both `pos` and
   * `from`, in seq order. A full page leaves the socket catching up (live
   * messages wait; the next page will hold them); the last page ends with
   * `ready`.
   */
  private replay(ws: WebSocket, att: Attachment, pos: number, from: number): void {
    const all = att.types.includes("*") ? 1 : 0;
    const rows = this.sql
      .exec<MessageRow>(
        `SELECT ${COLUMNS} FROM messages WHERE to_agent = ?1 AND acked_at IS NULL AND seq > ?2
         UNION ALL
         SELECT ${COLUMNS} FROM messages WHERE to_agent IS NULL AND seq > max(?2, ?3)
           AND (?4 OR type IN (SELECT value FROM json_each(?5)))
         ORDER BY seq LIMIT ?6`,
        att.agent,
        pos,
        from,
        all,
        JSON.stringify(att.types),
        REPLAY_PAGE,
      )
      .toArray();
    for (const row of rows) send(ws, { op: "msg", m: toMessage(row) });
    const last = rows[rows.length - 1]?.seq ?? pos;
    if (rows.length === REPLAY_PAGE) {
      att.catchup = { pos: last, from };
      ws.serializeAttachment(att);
      send(ws, { op: "more" });
      return;
    }
    att.catchup = null;
    ws.serializeAttachment(att);
    send(ws, { op: "ready", seq: Math.max(this.counter("seq"), pos) });
  }

  override webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): void {
    const att = ws.deserializeAttachment() as Attachment | null;
    if (att === null) return;
    const data = parseFrame(ws, raw);
    if (data === null) return;
    const parsed = ClientFrame.safeParse(data);
    if (!parsed.success) {
      this.audit.add(att, "invalid", 422, refuse(ws, data, parsed.error));
      return;
    }
    const frame = parsed.data;
    switch (frame.op) {
      case "pub": {
        const result = this.publish(att.agent, frame.m, att);
        if (result.ok) send(ws, { op: "ok", ref: frame.ref, m: result.message });
        else send(ws, { op: "error", ref: frame.ref, code: result.code, message: result.message, field: "id" });
        return;
      }
      case "sub":
        this.subscribe(ws, att, frame.types, frame.from);
        return;
      case "read":
        this.markRead(att, frame.ids);
        return;
      case "cursor":
        this.sql.exec(
          `INSERT INTO cursors (agent_id, seq, updated_at) VALUES (?, ?, ?)
           ON CONFLICT (agent_id) DO UPDATE SET seq = max(seq, excluded.seq), updated_at = excluded.updated_at`,
          att.agent,
          Math.min(frame.seq, this.counter("seq")),
          Date.now(),
        );
        this.ensureSweep(Date.now());
        return;
      case "more":
        if (att.catchup !== null) this.replay(ws, att, att.catchup.pos, att.catchup.from);
        return;
    }
  }

  /** New subscriptions: kept in the attachment; broadcasts of added types after `from` replayed. */
  private subscribe(ws: WebSocket, att: Attachment, types: string[], from: number): void {
    const added = types.filter((t) => !att.types.includes(t));
    const upto = att.catchup?.pos ?? Number.MAX_SAFE_INTEGER;
    if (added.length > 0 && !att.types.includes("*")) {
      // Broadcasts of the added types (with `*`: of every type not already received).
      const wanted = added.includes("*")
        ? "type NOT IN (SELECT value FROM json_each(?4))"
        : "type IN (SELECT value FROM json_each(?4))";
      const rows = this.sql
        .exec<MessageRow>(
          `SELECT * FROM (SELECT ${COLUMNS} FROM messages WHERE to_agent IS NULL AND seq > ?1 AND seq <= ?2
             AND ${wanted} ORDER BY seq DESC LIMIT ?3) ORDER BY seq`,
          from,
          upto,
          SUB_REPLAY_MAX,
          JSON.stringify(added.includes("*") ? att.types : added),
        )
        .toArray();
      for (const row of rows) send(ws, { op: "msg", m: toMessage(row) });
    }
    att.types = types;
    ws.serializeAttachment(att);
    this.sql.exec("INSERT OR IGNORE INTO late_subs (sid) VALUES (?)", att.sid);
    send(ws, { op: "subok", from });
  }

  private markRead(att: Attachment, ids: string[]): void {
    if (ids.length === 0) return;
    this.sql.exec(
      `UPDATE messages SET acked_at = ? WHERE to_agent = ? AND acked_at IS NULL
         AND id IN (SELECT value FROM json_each(?))`,
      Date.now(),
      att.agent,
      JSON.stringify(ids),
    );
    this.audit.add(att, "read", 200);
  }

  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    const att = ws.deserializeAttachment() as Attachment | null;
    if (att !== null) this.sql.exec("DELETE FROM late_subs WHERE sid = ?", att.sid);
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // already closed
    }
  }

  override webSocketError(ws: WebSocket): void {
    const att = ws.deserializeAttachment() as Attachment | null;
    if (att !== null) this.sql.exec("DELETE FROM late_subs WHERE sid = ?", att.sid);
  }

  // -- retention --------------------------------------------------------------------------

  /** Retention: delete what is older than the retention period, a bounded batch per table per run. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    const cutoff = now - this.retentionMs;
    const deleted = [
      this.sql.exec(
        "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE ts < ? ORDER BY ts LIMIT ?)",
        cutoff,
        SWEEP_BATCH,
      ).rowsWritten,
      this.sql.exec(
        "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE failed_at < ? ORDER BY id LIMIT ?)",
        cutoff,
        SWEEP_BATCH,
      ).rowsWritten,
      this.sql.exec("DELETE FROM presence WHERE last_seen < ?", cutoff).rowsWritten,
      this.sql.exec("DELETE FROM cursors WHERE updated_at < ?", cutoff).rowsWritten,
    ];
    this.setCounter("alarm_at", 0);
    const full = deleted[0] === SWEEP_BATCH || deleted[1] === SWEEP_BATCH;
    const left = this.sql
      .exec<{ n: number }>(
        `SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM dead_letters)
           + (SELECT count(*) FROM presence) + (SELECT count(*) FROM cursors) AS n`,
      )
      .one().n;
    if (full) {
      this.setCounter("alarm_at", now + 1000);
      await this.ctx.storage.setAlarm(now + 1000);
    } else if (left > 0) {
      this.ensureSweep(now);
    }
  }
}
