/**
 * MailboxDO: one per project (`idFromName(project)`). It owns the project's
 * messages (with a per-project sequence number), the agents' cursors, presence
 * and dead letters, in the object's SQLite storage (`messages.ts`), and the
 * agents' WebSockets through the Hibernation API: an idle socket costs nothing
 * and stays open while the object is evicted from memory.
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
import { type Bindings, newId } from "@jetpack/gateway";
import { MailStore, toMessage, type TypeFilter } from "./messages";
import { type AgentPresence, ClientFrame, type DeadLetter, type Message, type Outgoing } from "./schemas";
import { answerPings, AuditBuffer, FrameBudget, parseFrame, refuse, send, type Speaker, speakerOf } from "./sockets";

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

/** The outcome of a publish: the stored message, or a refusal for the route to answer. */
export type Published =
  | { ok: true; message: Message }
  | { ok: false; status: 409; code: string; message: string };

const wants = (types: readonly string[]): TypeFilter => (types.includes("*") ? { all: true } : { only: types });

export class MailboxDO extends DurableObject<Bindings> {
  private readonly store: MailStore;
  private readonly audit: AuditBuffer;
  private readonly budget = new FrameBudget();

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.store = new MailStore(ctx.storage.sql);
    answerPings(ctx);
    this.audit = new AuditBuffer(ctx, env.DB, "/api/mail/subscribe");
  }

  private get retentionMs(): number {
    const ms = Number(this.env.JETPACK_MAIL_RETENTION_MS ?? "");
    return Number.isFinite(ms) && ms > 0 ? ms : DEFAULT_RETENTION_MS;
  }

  /** The retention sweep is due within the retention period whenever anything is stored. */
  private ensureSweep(now: number): void {
    if (this.store.counter("alarm_at") > 0) return;
    const at = now + Math.min(this.retentionMs, 3_600_000);
    this.store.setCounter("alarm_at", at);
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
    const to = out.to_agent ?? null;
    const existing = this.store.find(out.id);
    if (existing !== undefined) {
      if (existing.from_agent === agent && existing.type === out.type && existing.to_agent === to) {
        return { ok: true, message: toMessage(existing) };
      }
      return { ok: false, status: 409, code: "conflict", message: `message id ${JSON.stringify(out.id)} is taken` };
    }
    const row = this.store.insert({
      id: out.id,
      type: out.type,
      from_agent: agent,
      to_agent: to,
      payload: JSON.stringify(out.payload),
      ts: now,
      correlation_id: out.correlation_id ?? null,
      ack_required: (out.ack_required ?? to !== null) ? 1 : 0,
    });
    this.ensureSweep(now);
    const message = toMessage(row);
    this.fanOut(message);
    if (socket !== null) this.audit.add(socket, "pub", 201);
    return { ok: true, message };
  }

  /** Send a stored message to the sockets that should have it now. */
  private fanOut(message: Message): void {
    const frame = JSON.stringify({ op: "msg", m: message });
    const direct = message.to_agent !== null;
    const targets = direct ? this.ctx.getWebSockets(`a:${message.to_agent}`) : this.subscribers(message.type);
    for (const ws of targets) {
      const att = ws.deserializeAttachment() as Attachment | null;
      if (att === null || att.catchup !== null) continue;
      if (!direct && !att.types.includes(message.type) && !att.types.includes("*")) continue;
      send(ws, frame);
    }
  }

  /** Candidate sockets for a broadcast of `type` (each still checked against its attachment). */
  private subscribers(type: string): WebSocket[] {
    const late = this.store.lateSubscribers();
    if (late.length > LATE_SCAN_LIMIT) return this.ctx.getWebSockets();
    const found = new Set<WebSocket>();
    for (const tag of [`t:${type}`, "t:*", "t:+", ...late.map((sid) => `s:${sid}`)]) {
      for (const ws of this.ctx.getWebSockets(tag)) found.add(ws);
    }
    return [...found];
  }

  /** Direct messages to `agent`, oldest first. */
  inbox(agent: string, limit: number, includeAcked: boolean): Message[] {
    return this.store.inbox(agent, limit, includeAcked).map(toMessage);
  }

  /** Mark a direct message to `agent` handled; false if unknown or someone else's. */
  acknowledge(agent: string, messageId: string): boolean {
    return this.store.acknowledge(agent, messageId, Date.now());
  }

  // -- presence and dead letters ---------------------------------------------------------

  /** Record a heartbeat and broadcast it as a `heartbeat` message. */
  heartbeat(agent: string, status: string, info: Record<string, unknown>): Message {
    this.store.seen(agent, status, info, Date.now());
    const out: Outgoing = { id: newId("msg"), type: "heartbeat", payload: { ...info, status } };
    const published = this.publish(agent, out, null);
    if (!published.ok) throw new Error(published.message); // a fresh id cannot conflict
    return published.message;
  }

  /** Agents by id; silent longer than `windowMs` (or reporting offline) → offline. */
  agents(windowMs: number, includeOffline: boolean): AgentPresence[] {
    return this.store.agents(Date.now(), windowMs, includeOffline);
  }

  /** Keep a message one of `agent`'s handlers failed on every attempt. */
  recordDeadLetter(agent: string, letter: Omit<DeadLetter, "id" | "failed_at">): DeadLetter {
    const now = Date.now();
    const kept = this.store.addDeadLetter(agent, letter, now);
    this.ensureSweep(now);
    return kept;
  }

  deadLetters(agent: string, limit: number): DeadLetter[] {
    return this.store.deadLetters(agent, limit);
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
      pos = 0;
      from = this.store.cursor(speaker.agent) ?? this.store.lastSeq();
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
   * Send one page of what the socket missed (`MailStore.replayPage`). A full
   * page leaves the socket catching up (live messages wait; the next page
   * will hold them); the last page ends with `ready`.
   */
  private replay(ws: WebSocket, att: Attachment, pos: number, from: number): void {
    const rows = this.store.replayPage(att.agent, pos, from, wants(att.types), REPLAY_PAGE);
    for (const row of rows) send(ws, { op: "msg", m: toMessage(row) });
    const last = rows[rows.length - 1]?.seq ?? pos;
    att.catchup = rows.length === REPLAY_PAGE ? { pos: last, from } : null;
    ws.serializeAttachment(att);
    if (att.catchup !== null) send(ws, { op: "more" });
    else send(ws, { op: "ready", seq: Math.max(this.store.lastSeq(), pos) });
  }

  override webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): void {
    const att = ws.deserializeAttachment() as Attachment | null;
    if (att === null || !this.budget.take(ws, att.sid)) return;
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
        if (frame.ids.length > 0) {
          this.store.markRead(att.agent, frame.ids, Date.now());
          this.audit.add(att, "read", 200);
        }
        if (frame.ref !== undefined) send(ws, { op: "ok", ref: frame.ref, r: { read: frame.ids.length } });
        return;
      case "cursor":
        this.store.saveCursor(att.agent, frame.seq, Date.now());
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
    if (added.length > 0 && !att.types.includes("*")) {
      // Broadcasts of the added types (with `*`: of every type not already received).
      const filter: TypeFilter = added.includes("*") ? { except: att.types } : { only: added };
      const upto = att.catchup?.pos ?? Number.MAX_SAFE_INTEGER;
      for (const row of this.store.broadcasts(from, upto, filter, SUB_REPLAY_MAX)) {
        send(ws, { op: "msg", m: toMessage(row) });
      }
    }
    att.types = types;
    ws.serializeAttachment(att);
    this.store.addLateSubscriber(att.sid);
    send(ws, { op: "subok", from });
  }

  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    this.forget(ws);
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // already closed
    }
  }

  override webSocketError(ws: WebSocket): void {
    this.forget(ws);
  }

  private forget(ws: WebSocket): void {
    const att = ws.deserializeAttachment() as Attachment | null;
    if (att === null) return;
    this.store.dropLateSubscriber(att.sid);
    this.budget.forget(att.sid);
  }

  // -- retention --------------------------------------------------------------------------

  /** Retention: delete what is older than the retention period, a bounded batch per run. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    const { more, left } = this.store.sweep(now - this.retentionMs, SWEEP_BATCH);
    this.store.setCounter("alarm_at", 0);
    if (more) {
      this.store.setCounter("alarm_at", now + 1000);
      await this.ctx.storage.setAlarm(now + 1000);
    } else if (left) {
      this.ensureSweep(now);
    }
  }
}
