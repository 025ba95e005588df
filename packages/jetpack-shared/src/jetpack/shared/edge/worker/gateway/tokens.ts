/**
 * Token routes. The admin token mints and revokes project tokens; a project
 * token mints expiring agent-bound tokens for its own project (the CLI gives
 * one to each agent it starts) and revokes them. Tokens are shown once, at
 * creation; only their SHA-256 is stored. Listings never show tokens.
 * `GET /api/whoami` names the caller (project, token id, agent): no query beyond authentication.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { newId, newToken, sha256Hex } from "./crypto";
import { GatewayDb, type Sql, sql } from "./db";
import { ErrorSchema, forbidden, invalid, notFound } from "./errors";
import { forgetToken } from "./middleware";
import type { GatewayApp } from "./env";
import { projectOf, requireAdmin } from "./principal";
import { Identifier, Timestamp, toIso } from "./schemas";

const DAY_MS = 86_400_000;
/** Agent tokens minted by a project token live at most this long. */
const MAX_AGENT_TOKEN_MS = 30 * DAY_MS;
const DEFAULT_AGENT_TOKEN_MS = DAY_MS;
/** Any token lives at most ten years. */
const MAX_TOKEN_MS = 3650 * DAY_MS;

const TtlMs = z.number().int().positive().max(MAX_TOKEN_MS);

const AdminTokenRequest = z
  .object({
    project: Identifier.openapi({ description: "Project the token belongs to." }),
    agent_id: Identifier.nullish().openapi({ description: "Bind the token to one agent." }),
    ttl_ms: TtlMs.nullish().openapi({ description: "Lifetime; omitted: never expires." }),
  })
  .strict()
  .openapi("AdminTokenRequest");

const AgentTokenRequest = z
  .object({
    agent_id: Identifier.openapi({ description: "The only agent the token may act as." }),
    ttl_ms: TtlMs.max(MAX_AGENT_TOKEN_MS)
      .nullish()
      .openapi({ description: "Lifetime (default 1 day, at most 30 days)." }),
  })
  .strict()
  .openapi("AgentTokenRequest");

const NewToken = z
  .object({
    id: z.string(),
    token: z.string().openapi({ description: "The bearer token. Shown only here, once." }),
    project: z.string(),
    agent_id: z.string().nullable(),
    expires_at: Timestamp.nullable(),
  })
  .openapi("NewToken");

const TokenInfo = z
  .object({
    id: z.string(),
    project: z.string(),
    agent_id: z.string().nullable(),
    created_at: Timestamp,
    expires_at: Timestamp.nullable(),
    revoked_at: Timestamp.nullable(),
    created_by: z.string(),
  })
  .openapi("TokenInfo");

const TokenList = z.object({ tokens: z.array(TokenInfo) }).openapi("TokenList");
const WhoAmI = z
  .object({
    project: z.string(),
    token_id: z.string(),
    agent_id: z.string().nullable().openapi({ description: "Set for an agent-bound token." }),
  })
  .openapi("WhoAmI");
const Revoked = z.object({ revoked: z.boolean() }).openapi("Revoked");
const TokenId = z.object({ id: z.string().max(64) });

const AuditEntry = z
  .object({
    seq: z.number().int(),
    at: Timestamp,
    request_id: z.string(),
    project: z.string().nullable(),
    token_id: z.string().nullable(),
    agent_id: z.string().nullable(),
    method: z.string(),
    route: z.string(),
    path: z.string(),
    status: z.number().int(),
    code: z.string().nullable(),
  })
  .openapi("AuditEntry");

const AuditQuery = z.object({
  since: z
    .string()
    .optional()
    .openapi({ description: "Only entries at or after this time (epoch ms or ISO 8601)." }),
  after: z.coerce.number().int().min(0).optional().openapi({ description: "Only entries with seq > after." }),
  project: Identifier.optional().openapi({ description: "Admin only: one project's entries." }),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { "application/json": { schema } },
  description,
});
const errors = {
  401: json(ErrorSchema, "Missing, unknown or revoked token."),
  403: json(ErrorSchema, "This token may not do that."),
};

interface TokenRow extends Record<string, unknown> {
  id: string;
  project: string;
  agent_id: string | null;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  created_by: string;
}

function info(row: TokenRow): z.infer<typeof TokenInfo> {
  return {
    id: row.id,
    project: row.project,
    agent_id: row.agent_id,
    created_at: toIso(row.created_at) ?? "",
    expires_at: toIso(row.expires_at),
    revoked_at: toIso(row.revoked_at),
    created_by: row.created_by,
  };
}

async function mint(
  gw: GatewayDb,
  project: string,
  agentId: string | null,
  ttlMs: number | null,
  createdBy: string,
): Promise<z.infer<typeof NewToken>> {
  const token = newToken();
  const id = newId("tok");
  const now = Date.now();
  const expires = ttlMs === null ? null : now + ttlMs;
  await gw.run(
    sql`INSERT INTO tokens (id, hash, project, agent_id, created_at, expires_at, created_by)
        VALUES (${id}, ${await sha256Hex(token)}, ${project}, ${agentId}, ${now}, ${expires}, ${createdBy})`,
  );
  return { id, token, project, agent_id: agentId, expires_at: toIso(expires) };
}

const TOKEN_COLUMNS = sql`id, project, agent_id, created_at, expires_at, revoked_at, created_by`;

async function revoke(gw: GatewayDb, where: Sql): Promise<boolean> {
  const revoked = await gw.all<{ id: string }>(
    sql`UPDATE tokens SET revoked_at = ${Date.now()} WHERE revoked_at IS NULL AND ${where} RETURNING id`,
  );
  for (const { id } of revoked) forgetToken(id);
  return revoked.length > 0;
}

/** Register the token and audit routes. */
export function registerTokenRoutes(app: GatewayApp): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/whoami",
      summary: "The calling project token: its project, id and agent (a cheap authenticated check)",
      security: [{ bearer: [] }],
      responses: { 200: json(WhoAmI, "The caller."), ...errors },
    }),
    (c) => {
      const caller = projectOf(c);
      return c.json({ project: caller.project, token_id: caller.tokenId, agent_id: caller.agentId }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/admin/tokens",
      summary: "Mint a project token (admin)",
      security: [{ bearer: [] }],
      request: { body: { content: { "application/json": { schema: AdminTokenRequest } }, required: true } },
      responses: { 201: json(NewToken, "The new token, shown once."), ...errors },
    }),
    async (c) => {
      requireAdmin(c);
      const body = c.req.valid("json");
      const gw = new GatewayDb(c.env.DB);
      return c.json(await mint(gw, body.project, body.agent_id ?? null, body.ttl_ms ?? null, "admin"), 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/admin/tokens",
      summary: "List tokens (admin); never shows the tokens",
      security: [{ bearer: [] }],
      request: { query: z.object({ project: Identifier.optional() }) },
      responses: { 200: json(TokenList, "Tokens, newest first."), ...errors },
    }),
    async (c) => {
      requireAdmin(c);
      const { project } = c.req.valid("query");
      const gw = new GatewayDb(c.env.DB);
      const where = project === undefined ? sql`1` : sql`project = ${project}`;
      const rows = await gw.all<TokenRow>(
        sql`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE ${where} ORDER BY created_at DESC LIMIT 1000`,
      );
      return c.json({ tokens: rows.map(info) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/admin/tokens/{id}",
      summary: "Revoke any token (admin)",
      security: [{ bearer: [] }],
      request: { params: TokenId },
      responses: { 200: json(Revoked, "Revoked."), 404: json(ErrorSchema, "No live token has this id."), ...errors },
    }),
    async (c) => {
      requireAdmin(c);
      const { id } = c.req.valid("param");
      if (!(await revoke(new GatewayDb(c.env.DB), sql`id = ${id}`))) throw notFound("token", id);
      return c.json({ revoked: true }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/tokens",
      summary: "Mint an expiring agent-bound token for this project",
      security: [{ bearer: [] }],
      request: { body: { content: { "application/json": { schema: AgentTokenRequest } }, required: true } },
      responses: { 201: json(NewToken, "The new token, shown once."), ...errors },
    }),
    async (c) => {
      const principal = projectOf(c);
      if (principal.agentId !== null) throw forbidden("an agent-bound token cannot mint tokens");
      const body = c.req.valid("json");
      c.set("auditAgent", body.agent_id);
      const ttl = body.ttl_ms ?? DEFAULT_AGENT_TOKEN_MS;
      const gw = new GatewayDb(c.env.DB);
      return c.json(await mint(gw, principal.project, body.agent_id, ttl, principal.tokenId), 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/tokens",
      summary: "List this project's tokens; never shows the tokens",
      security: [{ bearer: [] }],
      responses: { 200: json(TokenList, "Tokens, newest first."), ...errors },
    }),
    async (c) => {
      const principal = projectOf(c);
      const gw = new GatewayDb(c.env.DB);
      const rows = await gw.all<TokenRow>(
        sql`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE project = ${principal.project}
            ORDER BY created_at DESC LIMIT 1000`,
      );
      return c.json({ tokens: rows.map(info) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/tokens/{id}",
      summary: "Revoke an agent token this project minted",
      security: [{ bearer: [] }],
      request: { params: TokenId },
      responses: { 200: json(Revoked, "Revoked."), 404: json(ErrorSchema, "No such live agent token."), ...errors },
    }),
    async (c) => {
      const principal = projectOf(c);
      if (principal.agentId !== null) throw forbidden("an agent-bound token cannot revoke tokens");
      const { id } = c.req.valid("param");
      const mine = sql`id = ${id} AND project = ${principal.project} AND created_by <> 'admin'`;
      if (!(await revoke(new GatewayDb(c.env.DB), mine))) throw notFound("token", id);
      return c.json({ revoked: true }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/audit",
      summary: "Audit log: this project's entries (the admin token: all, refusals included)",
      security: [{ bearer: [] }],
      request: { query: AuditQuery },
      responses: { 200: json(z.object({ entries: z.array(AuditEntry) }), "Oldest first."), ...errors },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const principal = c.get("principal");
      let scope: Sql;
      if (principal?.kind === "admin") {
        scope = query.project === undefined ? sql`1` : sql`project = ${query.project}`;
      } else {
        scope = sql`project = ${projectOf(c).project}`;
      }
      const since = query.since === undefined ? 0 : parseSince(query.since);
      const rows = await new GatewayDb(c.env.DB).all<Record<string, unknown> & { at: number }>(
        sql`SELECT seq, at, request_id, project, token_id, agent_id, method, route, path, status, code
            FROM audit_log WHERE ${scope} AND at >= ${since} AND seq > ${query.after ?? 0}
            ORDER BY seq LIMIT ${query.limit}`,
      );
      const entries = rows.map((r) => AuditEntry.parse({ ...r, at: toIso(r.at) }));
      return c.json({ entries }, 200);
    },
  );
}

function parseSince(since: string): number {
  if (/^\d+$/.test(since)) return Number(since);
  const ms = Date.parse(since);
  if (Number.isNaN(ms)) throw invalid("since", "must be epoch milliseconds or an ISO 8601 time");
  return ms;
}
