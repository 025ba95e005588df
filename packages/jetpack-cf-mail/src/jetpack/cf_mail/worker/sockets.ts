/**
 * What both objects' WebSockets share: who a socket speaks for (set by the
 * route after the gateway authenticated the upgrade, never by the client), the
 * answer frames, and the audit of mutations that arrive as frames (no HTTP
 * request carries them, so the gateway's audit middleware never sees them).
 */
import { type AuditRecord, auditStatement, fromZod } from "@jetpack/gateway";
import type { ZodError } from "zod";

/** Headers the route sets on the upgrade it forwards to an object. */
export const AGENT_HEADER = "X-Jetpack-Agent";
export const PROJECT_HEADER = "X-Jetpack-Project";
export const TOKEN_HEADER = "X-Jetpack-Token-Id";

/** Who a socket speaks for (kept in its attachment). */
export interface Speaker {
  agent: string;
  project: string;
  /** The id (never the secret) of the token the socket was opened with. */
  tokenId: string;
  sid: string;
}

/** The speaker of an upgrade the route forwarded, or null when it is not one. */
export function speakerOf(request: Request, sid: string): Speaker | null {
  const agent = request.headers.get(AGENT_HEADER);
  if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket" || agent === null) return null;
  return {
    agent,
    project: request.headers.get(PROJECT_HEADER) ?? "",
    tokenId: request.headers.get(TOKEN_HEADER) ?? "",
    sid,
  };
}

/**
 * Answer a text `ping` with `pong` without waking the object (a keep-alive
 * for clients that cannot send protocol pings; jetpack-cf-mail's can).
 */
export function answerPings(ctx: DurableObjectState): void {
  ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
}

/** Send a frame; a socket closing under us is left to its close event. */
export function send(ws: WebSocket, frame: unknown): void {
  try {
    ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  } catch {
    // closing
  }
}

/** A frame's JSON, or null after answering `bad_json`. */
export function parseFrame(ws: WebSocket, raw: string | ArrayBuffer): unknown {
  try {
    return JSON.parse(typeof raw === "string" ? raw : new TextDecoder().decode(raw));
  } catch {
    send(ws, { op: "error", ref: null, code: "bad_json", message: "frames are JSON", field: "frame" });
    return null;
  }
}

/** Answer a frame that failed its schema: `error` naming the field, with the frame's `ref`. */
export function refuse(ws: WebSocket, data: unknown, error: ZodError): string {
  const ref = typeof data === "object" && data !== null && "ref" in data ? (data as { ref: unknown }).ref : null;
  const err = fromZod(error, "frame");
  send(ws, { op: "error", ref, code: err.code, message: err.message, field: err.field });
  return err.code;
}

/** Rows of a batch are written this long after the first. */
const FLUSH_MS = 250;

/**
 * Audit rows of socket mutations, written in one D1 batch shortly after the
 * first (off the frame's path). The buffer holds writes in flight only.
 */
export class AuditBuffer {
  private rows: AuditRecord[] = [];

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly db: D1Database,
    private readonly route: string,
  ) {}

  add(who: Speaker, op: string, status: number, code: string | null = null): void {
    this.rows.push({
      at: Date.now(),
      requestId: `ws:${who.sid}`,
      project: who.project,
      tokenId: who.tokenId,
      agentId: who.agent,
      method: "WS",
      route: this.route,
      path: `${this.route}#${op}`,
      status,
      code,
    });
    if (this.rows.length > 1) return;
    this.ctx.waitUntil(
      new Promise((resolve) => setTimeout(resolve, FLUSH_MS)).then(async () => {
        const rows = this.rows;
        this.rows = [];
        try {
          await this.db.batch(rows.map((row) => auditStatement(this.db, row)));
        } catch (err) {
          console.error("socket audit rows not written", err);
        }
      }),
    );
  }
}

/** Frames one socket may send per window (the gateway's default per-token budget). */
const FRAME_BUDGET = 10_000;
const WINDOW_MS = 10_000;

/**
 * A rate limit on frames, per socket: past the budget the socket gets a
 * `rate_limited` error and is closed (1008); its client reconnects after its
 * back-off, through the gateway's per-token limit. The counts are a cache of
 * the current window only (an evicted object was idle, so under budget).
 */
export class FrameBudget {
  private readonly used = new Map<string, { start: number; count: number }>();

  /** Count one frame of the socket `sid`; false (and the socket closed) past the budget. */
  take(ws: WebSocket, sid: string): boolean {
    const now = Date.now();
    let entry = this.used.get(sid);
    if (entry === undefined || now - entry.start >= WINDOW_MS) {
      entry = { start: now, count: 0 };
      this.used.set(sid, entry);
    }
    entry.count += 1;
    if (entry.count <= FRAME_BUDGET) return true;
    send(ws, { op: "error", ref: null, code: "rate_limited", message: "too many frames; slow down" });
    try {
      ws.close(1008, "rate limited");
    } catch {
      // already closing
    }
    return false;
  }

  forget(sid: string): void {
    this.used.delete(sid);
  }
}
