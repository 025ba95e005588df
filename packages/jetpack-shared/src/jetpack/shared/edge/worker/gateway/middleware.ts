/**
 * The gateway's middlewares, in the order the app factory composes them:
 * request id → audit → CORS → body limit → auth (+ project scope) → rate
 * limit → idempotency → upload reassembly → the modules' routes.
 */
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit as honoBodyLimit } from "hono/body-limit";
import { cors as honoCors } from "hono/cors";
import { matchedRoutes, routePath } from "hono/route";
import { digestIsSecret, hexOf, sha256 } from "./crypto";
import { DbTimer, GatewayDb, KeyTaken, ScopedDb, sql } from "./db";
import { ApiError, errorResponse, tooLarge, unauthorized } from "./errors";
import type { GatewayEnv } from "./env";

type Middleware = MiddlewareHandler<GatewayEnv>;

/** Largest request body accepted. */
export const MAX_BODY_BYTES = 1024 * 1024;

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** Replace headers on a response whose headers may be immutable (a fetched one). */
function withHeaders(c: Context<GatewayEnv>, headers: Record<string, string>): void {
  if (c.res.status === 101) return; // a WebSocket upgrade passes through untouched
  try {
    for (const [name, value] of Object.entries(headers)) c.res.headers.set(name, value);
  } catch {
    const copy = new Response(c.res.body, c.res);
    for (const [name, value] of Object.entries(headers)) copy.headers.set(name, value);
    c.res = copy;
  }
}

/**
 * `X-Request-Id`: the caller's (if sane) or a new one, echoed on every
 * response. `Server-Timing` says how long the Worker spent (`worker`) and how
 * much of it waiting on D1 (`db`); the Workers clock advances only at I/O.
 */
export const requestId = (): Middleware => async (c, next) => {
  const started = performance.now();
  const given = c.req.header("X-Request-Id");
  const id = given !== undefined && REQUEST_ID.test(given) ? given : crypto.randomUUID();
  c.set("requestId", id);
  c.set("principal", null);
  c.set("auditAgent", null);
  c.set("readOnly", false);
  c.set("errorCode", null);
  c.set("deferred", []);
  const timer = new DbTimer();
  c.set("dbTimer", timer);
  await next();
  const spent = (performance.now() - started).toFixed(1);
  const timing = `worker;dur=${spent}, db;dur=${timer.ms.toFixed(1)};desc="${timer.calls} D1 calls"`;
  withHeaders(c, { "X-Request-Id": id, "Server-Timing": timing });
};

function allowedOrigins(c: Context<GatewayEnv>): string[] {
  return (c.env.JETPACK_CORS_ORIGINS ?? "")
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o.length > 0);
}

/** No cross-origin access unless `JETPACK_CORS_ORIGINS` lists the origin. */
export const cors = (): Middleware => async (c, next) => {
  const origin = c.req.header("Origin");
  const allowed = allowedOrigins(c);
  if (origin !== undefined && allowed.includes(origin)) {
    const handler = honoCors({
      origin: allowed,
      allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"],
      allowMethods: ["GET", "POST", "PATCH", "DELETE"],
      exposeHeaders: ["X-Request-Id", "Retry-After"],
      maxAge: 600,
    });
    return await handler(c, next);
  }
  if (c.req.method === "OPTIONS" && origin !== undefined) {
    throw new ApiError(403, "cors_forbidden", `cross-origin requests from ${origin} are not allowed`);
  }
  await next();
};

const READS = new Set(["GET", "HEAD"]);

/** One row of the audit log (never the token, only its id). */
export interface AuditRecord {
  at: number;
  requestId: string;
  project: string | null;
  tokenId: string | null;
  agentId: string | null;
  method: string;
  route: string;
  path: string;
  status: number;
  code: string | null;
}

/**
 * The statement writing one audit row. The audit middleware writes one per
 * request; a Durable Object that takes mutations over a WebSocket (no HTTP
 * request per mutation) writes its own with it.
 */
export function auditStatement(d1: D1Database, row: AuditRecord): D1PreparedStatement {
  return new GatewayDb(d1).prepare(sql`INSERT INTO audit_log
      (at, request_id, project, token_id, agent_id, method, route, path, status, code)
    VALUES (${row.at}, ${row.requestId}, ${row.project}, ${row.tokenId}, ${row.agentId}, ${row.method},
      ${row.route}, ${row.path.slice(0, 512)}, ${row.status}, ${row.code})`);
}

/**
 * The audit log: every mutation and every refused request (never the token,
 * only its id). The row is written just after the response, in one batch with
 * the request's other deferred writes, so it appears a moment later.
 */
export const audit = (): Middleware => async (c, next) => {
  await next();
  const status = c.res.status;
  const deferred = c.get("deferred");
  if (!(READS.has(c.req.method) || c.get("readOnly")) || status >= 400) {
    const principal = c.get("principal");
    const project = principal?.kind === "project" ? principal.project : null;
    const agent = c.get("auditAgent") ?? (principal?.kind === "project" ? principal.agentId : null);
    deferred.push(
      auditStatement(c.env.DB, {
        at: Date.now(),
        requestId: c.get("requestId"),
        project,
        tokenId: principal?.tokenId ?? null,
        agentId: agent,
        method: c.req.method,
        route: routePath(c, -1),
        path: c.req.path,
        status,
        code: c.get("errorCode"),
      }),
    );
  }
  if (deferred.length > 0) {
    c.executionCtx.waitUntil(
      c.env.DB.batch(deferred).then(
        () => undefined,
        (err: unknown) => console.error("deferred gateway writes failed", err),
      ),
    );
  }
};

/**
 * Mark a route's requests as reads (a POST search): no audit row unless
 * refused. Register it with `app.use(path, readOnly())` before the route.
 */
export const readOnly = (): Middleware => async (c, next) => {
  c.set("readOnly", true);
  await next();
};

/** Bodies over 1 MiB → 413 (by Content-Length, or while streaming one without it). */
export const bodyLimit = (): Middleware =>
  honoBodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) => errorResponse(c as Context<GatewayEnv>, tooLarge()),
  });

/** Routes anyone may call. */
const PUBLIC = new Set(["GET /api/health", "GET /api/openapi.json"]);
/** Routes the admin token may call (everything else needs a project token). */
const ADMIN_PATHS = /^\/api\/(admin\/|audit$)/;
const BEARER = /^Bearer[ \t]+([\x21-\x7e]{1,512})[ \t]*$/;

interface TokenRow extends Record<string, unknown> {
  id: string;
  project: string;
  agent_id: string | null;
  expires_at: number | null;
  revoked_at: number | null;
}

/**
 * Token rows this isolate looked up, by hash, for {@link AUTH_CACHE_MS}: most
 * requests then need no D1 read to authenticate. A revocation through this
 * isolate takes effect at once ({@link forgetToken}); one made through another
 * isolate (a deployed Worker runs many) within AUTH_CACHE_MS. Expiry is
 * checked on every request.
 */
const AUTH_CACHE_MS = 5_000;
const AUTH_CACHE_SIZE = 10_000;
const authCache = new Map<string, { row: TokenRow; until: number }>();

/** Drop a token from this isolate's cache (after revoking it). */
export function forgetToken(tokenId: string): void {
  for (const [hash, entry] of authCache) if (entry.row.id === tokenId) authCache.delete(hash);
}

async function lookupToken(c: Context<GatewayEnv>, hash: string, now: number): Promise<TokenRow | null> {
  const cached = authCache.get(hash);
  if (cached !== undefined && cached.until > now) return cached.row;
  const row = await new GatewayDb(c.env.DB, c.get("dbTimer")).first<TokenRow>(
    sql`SELECT id, project, agent_id, expires_at, revoked_at FROM tokens WHERE hash = ${hash}`,
  );
  if (authCache.size >= AUTH_CACHE_SIZE) authCache.clear();
  if (row !== null) authCache.set(hash, { row, until: now + AUTH_CACHE_MS });
  else authCache.delete(hash);
  return row;
}

/**
 * `Authorization: Bearer <token>`: the admin secret, or a project token looked
 * up by its SHA-256. Missing, unknown, revoked or expired → 401. A project
 * token gets `c.var.db`, the project-scoped door to D1.
 */
export const auth = (): Middleware => async (c, next) => {
  if (PUBLIC.has(`${c.req.method} ${c.req.path}`)) return await next();
  const match = BEARER.exec(c.req.header("Authorization") ?? "");
  const token = match?.[1];
  if (token === undefined) throw unauthorized("missing bearer token (Authorization: Bearer …)");
  const digest = await sha256(token);
  const admin = c.env.JETPACK_ADMIN_TOKEN;
  if (admin !== undefined && admin.length > 0 && (await digestIsSecret(digest, admin))) {
    c.set("principal", { kind: "admin", tokenId: "admin" });
    if (!ADMIN_PATHS.test(c.req.path)) {
      throw new ApiError(
        403,
        "forbidden",
        "the admin token manages tokens and reads the audit log; use a project token",
      );
    }
    return await next();
  }
  const now = Date.now();
  const row = await lookupToken(c, hexOf(digest), now);
  if (row === null || row.revoked_at !== null) {
    await throttleGuesses(c);
    throw unauthorized("unknown or revoked token");
  }
  if (row.expires_at !== null && row.expires_at <= now) throw unauthorized("token expired");
  c.set("principal", {
    kind: "project",
    tokenId: row.id,
    project: row.project,
    agentId: row.agent_id,
  });
  c.set("db", new ScopedDb(c.env.DB, row.project, c.get("dbTimer")));
  await next();
};

function tooMany(c: Context<GatewayEnv>, message: string): ApiError {
  const period = c.env.JETPACK_RATE_LIMIT_PERIOD ?? "10";
  return new ApiError(429, "rate_limited", message, undefined, { "Retry-After": period });
}

/**
 * Token guessing shares one budget per client address (the same binding,
 * keyed by `CF-Connecting-IP`): past it, a wrong token gets 429, not 401.
 */
async function throttleGuesses(c: Context<GatewayEnv>): Promise<void> {
  const limiter = c.env.RATE_LIMITER;
  if (limiter === undefined) return;
  const address = c.req.header("CF-Connecting-IP") ?? "unknown";
  const { success } = await limiter.limit({ key: `guess:${address}` });
  if (!success) throw tooMany(c, "too many requests with unknown tokens from this address");
}

/** Per-token budget from the Rate Limiting binding → 429 with `Retry-After`. */
export const rateLimit = (): Middleware => async (c, next) => {
  const limiter = c.env.RATE_LIMITER;
  const principal = c.get("principal");
  if (limiter !== undefined && principal !== null) {
    const { success } = await limiter.limit({ key: principal.tokenId });
    if (!success) throw tooMany(c, "too many requests for this token; slow down");
  }
  await next();
};

const KEY = /^[\x21-\x7e]{1,128}$/;
const MUTATIONS = new Set(["POST", "PATCH", "PUT", "DELETE"]);
/** A first request still running after this long is taken to have died. */
const PENDING_MS = 60_000;

interface KeyRow extends Record<string, unknown> {
  method: string;
  path: string;
  state: string;
  status: number | null;
  body: string | null;
  created_at: number;
}

/**
 * `Idempotency-Key` on a mutation: the first request runs, its response is
 * kept (written just after it is sent); a retry with the same key gets that
 * response again (`Idempotent-Replayed: true`) and writes nothing. A retry
 * while the first still runs → 409 `in_progress` (retry later); the same key
 * on another route → 422. Responses of 5xx are not kept, so a retry runs again.
 *
 * The key is recorded before the route writes anything: by a D1 call of its
 * own, or, for the routes of modules that reach storage only through
 * `c.var.db` (`JetpackModule.keyInFirstCall`, the handlers in `inFirstCall`),
 * inside the route's own first D1 call that writes, which saves a round trip
 * and leaves no pending key behind a request that died before writing. A
 * route that wrote nothing answers afresh, unless the key is known (replay).
 */
export const idempotency =
  (inFirstCall: ReadonlySet<unknown> = new Set()): Middleware =>
  async (c, next) => {
    const key = c.req.header("Idempotency-Key");
    if (key === undefined || !MUTATIONS.has(c.req.method)) return await next();
    if (!KEY.test(key)) throw new ApiError(422, "invalid", "1-128 printable characters", "Idempotency-Key");
    const principal = c.get("principal");
    const project = principal?.kind === "project" ? principal.project : "";
    const gw = new GatewayDb(c.env.DB, c.get("dbTimer"));
    const now = Date.now();
    const method = c.req.method;
    const path = c.req.path;
    const record = sql`INSERT INTO idempotency_keys (project, key, method, path, state, created_at)
        VALUES (${project}, ${key}, ${method}, ${path}, 'pending', ${now})`;
    // An uploaded body is reassembled (and its parts deleted) before the route runs: a
    // repeat must be answered before that, so such a request records its key up front.
    const db = principal?.kind === "project" ? c.get("db") : undefined;
    const inRoute = c.req.header("Jetpack-Upload") === undefined && inFirstCall.has(matchedRoutes(c).at(-1)?.handler);
    if (db !== undefined && inRoute) {
      db.recordFirst(gw.prepare(record));
      await next();
      if (c.error instanceof KeyTaken) {
        c.error = undefined;
        const row = await keyRow(gw, project, key);
        c.res = (await repeat(c, gw, row, project, key, now, false)) ?? c.res; // else KeyTaken's 409
        return;
      }
      if (db.leadPending) {
        // The route wrote nothing, so its answer is not kept; but if an earlier
        // request with this key wrote, that one's answer stands (a replay).
        const row = await keyRow(gw, project, key);
        if (row !== null) c.res = (await repeat(c, gw, row, project, key, now, false)) ?? c.res;
        return;
      }
    } else {
      const inserted = await gw.run(sql`${record} ON CONFLICT (project, key) DO NOTHING`);
      if (inserted.meta.changes === 0) {
        const answer = await repeat(c, gw, await keyRow(gw, project, key), project, key, now, true);
        if (answer !== null) return answer;
      }
      await next();
    }
    // Kept with the audit row, just after the response: a retry arriving before
    // that sees the key pending (409 in_progress) and tries again a little later.
    const status = c.res.status;
    const deferred = c.get("deferred");
    if (status >= 500 || status === 429) {
      deferred.push(gw.prepare(sql`DELETE FROM idempotency_keys WHERE project = ${project} AND key = ${key}`));
      return;
    }
    const body = await c.res.clone().text();
    deferred.push(
      gw.prepare(sql`UPDATE idempotency_keys SET state = 'done', status = ${status}, body = ${body}
          WHERE project = ${project} AND key = ${key}`),
    );
  };

/** The stored row of an idempotency key (null: unknown). */
async function keyRow(gw: GatewayDb, project: string, key: string): Promise<KeyRow | null> {
  return await gw.first<KeyRow>(
    sql`SELECT method, path, state, status, body, created_at FROM idempotency_keys
        WHERE project = ${project} AND key = ${key}`,
  );
}

/**
 * The answer to a repeated key, given its stored `row` (null: gone meanwhile):
 * the first response replayed, 422 for a key used on another route, else 409
 * `in_progress`. A first request pending past
 * PENDING_MS is taken to have died: with `takeOver` this one runs instead
 * (null: go on), else the key is freed and the caller's retry runs.
 */
async function repeat(
  c: Context<GatewayEnv>,
  gw: GatewayDb,
  row: KeyRow | null,
  project: string,
  key: string,
  now: number,
  takeOver: boolean,
): Promise<Response | null> {
  if (row !== null && (row.method !== c.req.method || row.path !== c.req.path)) {
    return errorResponse(c, new ApiError(422, "invalid", "this key was used for another request", "Idempotency-Key"));
  }
  if (row !== null && row.state === "done" && row.status !== null) {
    return new Response(row.body, {
      status: row.status,
      headers: { "Content-Type": "application/json", "Idempotent-Replayed": "true" },
    });
  }
  if (row !== null && row.created_at <= now - PENDING_MS) {
    const stale = sql`WHERE project = ${project} AND key = ${key} AND state = 'pending'
        AND created_at = ${row.created_at}`;
    const freed = takeOver
      ? await gw.run(sql`UPDATE idempotency_keys SET created_at = ${now} ${stale}`)
      : await gw.run(sql`DELETE FROM idempotency_keys ${stale}`);
    if (takeOver && freed.meta.changes > 0) return null;
  }
  return errorResponse(
    c,
    new ApiError(409, "in_progress", "a request with this Idempotency-Key is still running; retry"),
  );
}
