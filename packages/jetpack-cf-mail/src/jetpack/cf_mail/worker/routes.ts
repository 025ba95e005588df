/**
 * The mail and lease routes: HTTP in, one call to the project's MailboxDO or
 * LeaseDO, JSON out. The caller's project and agent come from the gateway
 * (`projectOf`, `actAs`: an agent-bound token acts only as its agent, else
 * 403). Validation is the zod schemas'; lease paths are normalised here with
 * the shared rules (`paths.ts`), so the objects see only clean paths.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import {
  actAs,
  ApiError,
  ErrorSchema,
  type GatewayApp,
  type GatewayEnv,
  Identifier,
  invalid,
  type JetpackModule,
  newId,
  projectOf,
} from "@jetpack/gateway";
import { LeaseDO } from "./leases";
import { MailboxDO } from "./mailbox";
import { normalizeLeasePath } from "./paths";
import {
  AckSchema,
  AgentPresenceSchema,
  AgentsQuery,
  DeadLetterInput,
  DeadLetterQuery,
  DeadLetterSchema,
  HeartbeatSchema,
  InboxQuery,
  LeaseGrant,
  LeaseRequest,
  LeaseSchema,
  LeaseStatusSchema,
  MessageList,
  MessageSchema,
  PathInput,
  PublishSchema,
  ReleaseQuery,
  RenewRequest,
  SubscribeQuery,
  SubscriptionType,
} from "./schemas";
import { AGENT_HEADER, PROJECT_HEADER, TOKEN_HEADER } from "./sockets";

export { LeaseDO, MailboxDO };

type Ctx = Context<GatewayEnv>;

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { "application/json": { schema } },
  description,
});
const body = <T extends z.ZodType>(schema: T) => ({
  body: { content: { "application/json": { schema } }, required: true },
});
const refusals = {
  401: json(ErrorSchema, "Missing, unknown or revoked token."),
  403: json(ErrorSchema, "The token may not act as that agent."),
  422: json(ErrorSchema, "Invalid input; `field` names it."),
};
const security = [{ bearer: [] }];
const mailTags = ["mail"];
const leaseTags = ["leases"];

/**
 * An object's methods as called through its stub (RPC): the same arguments,
 * the answer as a promise. The values crossing are plain JSON (structured
 * clones); workers-types' RPC mapping cannot see through the `unknown` of a
 * JSON payload, so the stub is typed by the object's own signatures.
 */
type Remote<T, K extends keyof T> = {
  [P in K]: T[P] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

type MailboxStub = Remote<
  MailboxDO,
  "publish" | "inbox" | "acknowledge" | "heartbeat" | "agents" | "recordDeadLetter" | "deadLetters"
> & { fetch(request: Request): Promise<Response> };
type LeaseStub = Remote<LeaseDO, "acquire" | "renew" | "release" | "status" | "list"> & {
  fetch(request: Request): Promise<Response>;
};

/** The project's MailboxDO (`idFromName(project)`). */
function mailbox(c: Ctx): MailboxStub {
  const namespace = c.env.MAILBOX as DurableObjectNamespace<MailboxDO>;
  return namespace.get(namespace.idFromName(projectOf(c).project)) as unknown as MailboxStub;
}

/** The project's LeaseDO (`idFromName(project)`). */
function leases(c: Ctx): LeaseStub {
  const namespace = c.env.LEASES as DurableObjectNamespace<LeaseDO>;
  return namespace.get(namespace.idFromName(projectOf(c).project)) as unknown as LeaseStub;
}

/** The normal form of a lease path, or 422 naming `path`. */
function leasePath(path: string): string {
  const result = normalizeLeasePath(path);
  if (!result.ok) throw invalid("path", result.message);
  return result.path;
}

const flag = (value: string | undefined): boolean => value === "true";

/**
 * Hand a WebSocket upgrade to an object, as `agent` (403 for an agent-bound
 * token of another agent). The object learns the agent, project and token id
 * from headers set here; the client's own headers never reach it.
 */
async function upgrade(c: Ctx, agent: string, stub: { fetch(request: Request): Promise<Response> }, url: URL) {
  const principal = projectOf(c);
  actAs(c, agent);
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
    throw new ApiError(426, "upgrade_required", "this route speaks WebSocket (Upgrade: websocket)");
  }
  const headers = new Headers({
    Upgrade: "websocket",
    [AGENT_HEADER]: agent,
    [PROJECT_HEADER]: principal.project,
    [TOKEN_HEADER]: principal.tokenId,
  });
  return await stub.fetch(new Request(url, { headers }));
}

function registerMail(app: GatewayApp): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/mail/publish",
      summary: "Publish a message: a broadcast, or direct with `to_agent` (kept until acknowledged)",
      tags: mailTags,
      security,
      request: body(PublishSchema),
      responses: {
        201: json(MessageSchema, "Stored and sent to the live recipients, with its seq."),
        409: json(ErrorSchema, "The id belongs to another message."),
        ...refusals,
      },
    }),
    async (c) => {
      const input = c.req.valid("json");
      actAs(c, input.from_agent);
      const { from_agent, ...rest } = input;
      const out = { ...rest, id: input.id ?? newId("msg") };
      const result = await mailbox(c).publish(from_agent, out, null);
      if (!result.ok) throw new ApiError(result.status, result.code, result.message, "id");
      return c.json(result.message, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/mail/subscribe",
      summary: "WebSocket: the agent's live messages, after a replay of what it missed",
      description:
        "Server frames: `hello` (the broadcast floor), `msg` (a Message), `more` (a replay page ended: send `more`), `ready` (replay done), " +
        "`ok`/`error` (answers to `pub`), `subok`. Client frames: `pub`, `sub`, `read`, `cursor`, `more`.",
      tags: mailTags,
      security,
      request: { query: SubscribeQuery },
      responses: { 101: { description: "Switching to the WebSocket protocol." }, 426: json(ErrorSchema, "Not an upgrade."), ...refusals },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const types = (query.types ?? "").split(",").filter((t) => t.length > 0);
      const parsed = z.array(SubscriptionType).max(32).safeParse(types);
      if (!parsed.success) throw invalid("types", "comma-separated message types or *");
      const url = new URL("https://mailbox/subscribe");
      if (types.length > 0) url.searchParams.set("types", [...new Set(parsed.data)].join(","));
      if (query.since !== undefined) url.searchParams.set("since", String(query.since));
      if (query.from !== undefined) url.searchParams.set("from", String(query.from));
      return await upgrade(c, query.agent_id, mailbox(c), url);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/mail/inbox",
      summary: "Direct messages to the agent, oldest first (unacknowledged only by default)",
      tags: mailTags,
      security,
      request: { query: InboxQuery },
      responses: { 200: json(MessageList, "The inbox."), ...refusals },
    }),
    async (c) => {
      const query = c.req.valid("query");
      actAs(c, query.agent_id);
      const messages = await mailbox(c).inbox(query.agent_id, query.limit, flag(query.include_acked));
      return c.json({ messages }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/mail/ack",
      summary: "Acknowledge a direct message to the agent",
      tags: mailTags,
      security,
      request: body(AckSchema),
      responses: { 200: json(z.object({ acknowledged: z.boolean() }), "False: unknown or not to this agent."), ...refusals },
    }),
    async (c) => {
      const { agent_id, message_id } = c.req.valid("json");
      actAs(c, agent_id);
      return c.json({ acknowledged: await mailbox(c).acknowledge(agent_id, message_id) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/mail/heartbeat",
      summary: "Record that the agent is alive (and broadcast a heartbeat message)",
      tags: mailTags,
      security,
      request: body(HeartbeatSchema),
      responses: { 201: json(MessageSchema, "The heartbeat message."), ...refusals },
    }),
    async (c) => {
      const { agent_id, status, info } = c.req.valid("json");
      actAs(c, agent_id);
      return c.json(await mailbox(c).heartbeat(agent_id, status, info), 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/mail/agents",
      summary: "Agents seen within the presence window (with include_offline: all, marked offline)",
      tags: mailTags,
      security,
      request: { query: AgentsQuery },
      responses: { 200: json(z.object({ agents: z.array(AgentPresenceSchema) }), "By agent id."), ...refusals },
    }),
    async (c) => {
      const query = c.req.valid("query");
      return c.json({ agents: await mailbox(c).agents(query.window_ms, flag(query.include_offline)) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/mail/dead-letters",
      summary: "Keep a message one of the agent's handlers failed on every attempt",
      tags: mailTags,
      security,
      request: body(DeadLetterInput),
      responses: { 201: json(DeadLetterSchema, "Kept (until retention)."), ...refusals },
    }),
    async (c) => {
      const { agent_id, ...letter } = c.req.valid("json");
      actAs(c, agent_id);
      return c.json(await mailbox(c).recordDeadLetter(agent_id, letter), 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/mail/dead-letters",
      summary: "The agent's dead letters, oldest first",
      tags: mailTags,
      security,
      request: { query: DeadLetterQuery },
      responses: { 200: json(z.object({ dead_letters: z.array(DeadLetterSchema) }), "Oldest first."), ...refusals },
    }),
    async (c) => {
      const { agent_id, limit } = c.req.valid("query");
      actAs(c, agent_id);
      return c.json({ dead_letters: await mailbox(c).deadLetters(agent_id, limit) }, 200);
    },
  );
}

function registerLeases(app: GatewayApp): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/mail/lease",
      summary: "Lease a path or glob (exclusive by default); refused while another agent's lease conflicts",
      tags: leaseTags,
      security,
      request: body(LeaseRequest),
      responses: { 200: json(LeaseGrant, "Granted (`lease`) or refused (`held_by`)."), ...refusals },
    }),
    async (c) => {
      const { path, agent_id, ttl_ms, exclusive } = c.req.valid("json");
      actAs(c, agent_id);
      return c.json(await leases(c).acquire(agent_id, leasePath(path), exclusive, ttl_ms), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/mail/lease/socket",
      summary: "WebSocket: lease operations as frames, as the agent (cheaper than a request each)",
      description:
        "Client frames `acquire` (path, ttl_ms, exclusive), `renew` (path, ttl_ms), `release` (path, " +
        "fencing_token?), `status` (path), `list`, each with a `ref`; answered `ok` (`r`: the answer of the " +
        "matching HTTP route) or `error` (code, message, field).",
      tags: leaseTags,
      security,
      request: { query: z.object({ agent_id: Identifier }) },
      responses: { 101: { description: "Switching to the WebSocket protocol." }, 426: json(ErrorSchema, "Not an upgrade."), ...refusals },
    }),
    async (c) => {
      const { agent_id } = c.req.valid("query");
      return await upgrade(c, agent_id, leases(c), new URL("https://leases/socket"));
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/mail/lease/renew",
      summary: "Extend the agent's live lease on exactly this path (same fencing token)",
      tags: leaseTags,
      security,
      request: body(RenewRequest),
      responses: { 200: json(z.object({ renewed: z.boolean() }), "False: the agent holds no such lease."), ...refusals },
    }),
    async (c) => {
      const { path, agent_id, ttl_ms } = c.req.valid("json");
      actAs(c, agent_id);
      return c.json({ renewed: await leases(c).renew(agent_id, leasePath(path), ttl_ms) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/mail/lease",
      summary: "Release the agent's lease on exactly this path (only the holder can)",
      tags: leaseTags,
      security,
      request: { query: ReleaseQuery },
      responses: { 200: json(z.object({ released: z.boolean() }), "False: the agent holds no such lease."), ...refusals },
    }),
    async (c) => {
      const { path, agent_id, fencing_token } = c.req.valid("query");
      actAs(c, agent_id);
      return c.json({ released: await leases(c).release(agent_id, leasePath(path), fencing_token ?? null) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/mail/lease",
      summary: "Whether a live lease (of anyone) overlaps the path, and whose",
      tags: leaseTags,
      security,
      request: { query: z.object({ path: PathInput }) },
      responses: { 200: json(LeaseStatusSchema, "The status."), ...refusals },
    }),
    async (c) => c.json(await leases(c).status(leasePath(c.req.valid("query").path)), 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/mail/leases",
      summary: "Every live lease of the project, in grant order",
      tags: leaseTags,
      security,
      responses: { 200: json(z.object({ leases: z.array(LeaseSchema) }), "Live leases."), ...refusals },
    }),
    async (c) => c.json({ leases: await leases(c).list() }, 200),
  );
}

function register(app: GatewayApp): void {
  registerMail(app);
  registerLeases(app);
}

const mail: JetpackModule = { name: "mail", register };
export default mail;
