/**
 * LeaseDO: one per project (`idFromName(project)`), the project's file leases
 * in the object's SQLite storage. The object runs one call at a time, so each
 * decision (drop what expired, read the other agents' leases, check overlap
 * with the shared rules of `paths.ts`, take the next fencing token, write the
 * grant) is atomic. Fencing tokens come from one counter per project and only
 * grow. Expiry is checked in every decision; an alarm at the earliest expiry
 * deletes lapsed rows.
 *
 * The same operations are HTTP routes and frames on a WebSocket (hibernating,
 * tagged by agent) that a bus keeps open: a frame costs far less than a
 * request, and the socket's agent is the one the gateway let open it.
 */
import { DurableObject } from "cloudflare:workers";
import { type Bindings, newId, toIso } from "@jetpack/gateway";
import { normalizeLeasePath, pathsOverlap } from "./paths";
import { type Lease, LeaseFrame, type LeaseGrant, type LeaseStatus } from "./schemas";
import { answerPings, AuditBuffer, FrameBudget, parseFrame, refuse, send, type Speaker, speakerOf } from "./sockets";

interface LeaseRow extends Record<string, SqlStorageValue> {
  path: string;
  agent_id: string;
  exclusive: number;
  acquired_at: number;
  expires_at: number;
  fencing_token: number;
}

const COLUMNS = "path, agent_id, exclusive, acquired_at, expires_at, fencing_token";

function toLease(row: LeaseRow): Lease {
  return {
    path: row.path,
    agent_id: row.agent_id,
    exclusive: row.exclusive === 1,
    acquired_at: toIso(row.acquired_at) ?? "",
    expires_at: toIso(row.expires_at) ?? "",
    fencing_token: row.fencing_token,
  };
}

export class LeaseDO extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  private readonly audit: AuditBuffer;
  private readonly budget = new FrameBudget();

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    answerPings(ctx);
    this.audit = new AuditBuffer(ctx, env.DB, "/api/mail/lease/socket");
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS leases (
        path TEXT NOT NULL, agent_id TEXT NOT NULL, exclusive INTEGER NOT NULL,
        acquired_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, fencing_token INTEGER NOT NULL,
        PRIMARY KEY (path, agent_id));
      CREATE INDEX IF NOT EXISTS leases_expiry ON leases (expires_at);
      CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    `);
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

  /** Make sure the alarm fires by `at` (an earlier one stays; it reschedules itself). */
  private alarmBy(at: number): void {
    const current = this.counter("alarm_at");
    if (current > 0 && current <= at) return;
    this.setCounter("alarm_at", at);
    void this.ctx.storage.setAlarm(at);
  }

  private live(now: number): LeaseRow[] {
    return this.sql
      .exec<LeaseRow>(`SELECT ${COLUMNS} FROM leases WHERE expires_at > ? ORDER BY fencing_token`, now)
      .toArray();
  }

  /**
   * Grant `path` to `agent` for `ttlMs`, unless an overlapping live lease of
   * another agent conflicts (exclusive conflicts with anything, shared with
   * exclusive). Re-acquiring one's own lease renews it with a new token.
   */
  acquire(agent: string, path: string, exclusive: boolean, ttlMs: number): LeaseGrant {
    const now = Date.now();
    this.sql.exec("DELETE FROM leases WHERE expires_at <= ?", now);
    const others = this.sql
      .exec<LeaseRow>(`SELECT ${COLUMNS} FROM leases WHERE agent_id <> ? ORDER BY fencing_token`, agent)
      .toArray();
    for (const row of others) {
      if ((exclusive || row.exclusive === 1) && pathsOverlap(row.path, path)) {
        return { acquired: false, lease: null, held_by: toLease(row) };
      }
    }
    const token = this.counter("fencing") + 1;
    this.setCounter("fencing", token);
    const row: LeaseRow = {
      path,
      agent_id: agent,
      exclusive: exclusive ? 1 : 0,
      acquired_at: now,
      expires_at: now + ttlMs,
      fencing_token: token,
    };
    this.sql.exec(
      `INSERT INTO leases (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (path, agent_id) DO UPDATE SET exclusive = excluded.exclusive,
         acquired_at = excluded.acquired_at, expires_at = excluded.expires_at,
         fencing_token = excluded.fencing_token`,
      row.path,
      row.agent_id,
      row.exclusive,
      row.acquired_at,
      row.expires_at,
      row.fencing_token,
    );
    this.alarmBy(row.expires_at);
    return { acquired: true, lease: toLease(row), held_by: null };
  }

  /** Extend `agent`'s live lease on exactly `path` (same token); false if it holds none. */
  renew(agent: string, path: string, ttlMs: number): boolean {
    const now = Date.now();
    const cursor = this.sql.exec(
      "UPDATE leases SET expires_at = ? WHERE path = ? AND agent_id = ? AND expires_at > ?",
      now + ttlMs,
      path,
      agent,
      now,
    );
    return cursor.rowsWritten > 0;
  }

  /**
   * Release `agent`'s live lease on exactly `path`; false if it holds none.
   * With `token`, only while the lease still carries that grant (a bus
   * releasing what it acquired leaves a path re-granted through another bus).
   */
  release(agent: string, path: string, token: number | null): boolean {
    const now = Date.now();
    const guard = token === null ? "" : " AND fencing_token = ?";
    const args: SqlStorageValue[] = token === null ? [path, agent, now] : [path, agent, now, token];
    const cursor = this.sql.exec(
      `DELETE FROM leases WHERE path = ? AND agent_id = ? AND expires_at > ?${guard}`,
      ...args,
    );
    this.sql.exec("DELETE FROM leases WHERE path = ? AND agent_id = ? AND expires_at <= ?", path, agent, now);
    return cursor.rowsWritten > 0;
  }

  /** Whether a live lease overlaps `path`: an exclusive one first, then the oldest grant. */
  status(path: string): LeaseStatus {
    const matches = this.live(Date.now()).filter((row) => pathsOverlap(row.path, path));
    matches.sort((x, y) => y.exclusive - x.exclusive || x.fencing_token - y.fencing_token);
    const best = matches[0];
    if (best === undefined) {
      return {
        path,
        is_leased: false,
        agent_id: null,
        expires_at: null,
        exclusive: null,
        fencing_token: null,
        pattern: null,
      };
    }
    return {
      path,
      is_leased: true,
      agent_id: best.agent_id,
      expires_at: toIso(best.expires_at),
      exclusive: best.exclusive === 1,
      fencing_token: best.fencing_token,
      pattern: best.path,
    };
  }

  /** Every live lease, in grant order. */
  list(): Lease[] {
    return this.live(Date.now()).map(toLease);
  }

  // -- the socket ---------------------------------------------------------------------------

  /** Accept a socket the route authenticated (see `sockets.ts`). */
  override async fetch(request: Request): Promise<Response> {
    const speaker = speakerOf(request, newId("ws"));
    if (speaker === null) return new Response("expected a WebSocket upgrade from the lease route", { status: 426 });
    const pair = new WebSocketPair();
    const [client, server] = Object.values(pair) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server, [`a:${speaker.agent}`]);
    server.serializeAttachment(speaker);
    return new Response(null, { status: 101, webSocket: client });
  }

  /** One lease operation as the socket's agent, answered `ok` (`r`: as the route's) or `error`. */
  override webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): void {
    const who = ws.deserializeAttachment() as Speaker | null;
    if (who === null || !this.budget.take(ws, who.sid)) return;
    const data = parseFrame(ws, raw);
    if (data === null) return;
    const parsed = LeaseFrame.safeParse(data);
    if (!parsed.success) {
      this.audit.add(who, "invalid", 422, refuse(ws, data, parsed.error));
      return;
    }
    const frame = parsed.data;
    if (frame.op === "list") {
      send(ws, { op: "ok", ref: frame.ref, r: { leases: this.list() } });
      return;
    }
    const norm = normalizeLeasePath(frame.path);
    if (!norm.ok) {
      send(ws, { op: "error", ref: frame.ref, code: "invalid", message: norm.message, field: "path" });
      this.audit.add(who, frame.op, 422, "invalid");
      return;
    }
    let answer: unknown;
    switch (frame.op) {
      case "acquire":
        answer = this.acquire(who.agent, norm.path, frame.exclusive, frame.ttl_ms);
        break;
      case "renew":
        answer = { renewed: this.renew(who.agent, norm.path, frame.ttl_ms) };
        break;
      case "release":
        answer = { released: this.release(who.agent, norm.path, frame.fencing_token ?? null) };
        break;
      case "status":
        answer = this.status(norm.path);
        break;
    }
    send(ws, { op: "ok", ref: frame.ref, r: answer });
    if (frame.op !== "status") this.audit.add(who, frame.op, 200);
  }

  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    const who = ws.deserializeAttachment() as Speaker | null;
    if (who !== null) this.budget.forget(who.sid);
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // already closed
    }
  }

  /** Delete lapsed leases; come back at the next expiry. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    this.sql.exec("DELETE FROM leases WHERE expires_at <= ?", now);
    this.setCounter("alarm_at", 0);
    const next = this.sql.exec<{ at: number | null }>("SELECT min(expires_at) AS at FROM leases").one().at;
    if (next !== null) {
      this.setCounter("alarm_at", next);
      await this.ctx.storage.setAlarm(next);
    }
  }
}
