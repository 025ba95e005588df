/**
 * zod schemas of the mail and lease routes and of the WebSocket frames. Each
 * mirrors a pydantic model of `jetpack.shared` (`Message`, `Lease`,
 * `LeaseStatus`, `AgentPresence`) or an argument check of the MailBus: same
 * field names, same limits, so the Worker refuses what the Python client
 * refuses (a test compares the two through the OpenAPI document).
 */
import { z } from "@hono/zod-openapi";
import { Identifier, jsonObject, TextOf, Timestamp } from "@jetpack/gateway";

/** Largest message payload (`jetpack.shared.MAX_PAYLOAD_BYTES`). */
export const MAX_PAYLOAD_BYTES = 256 * 1024;
/** Largest heartbeat `info` (`jetpack.shared.MAX_METADATA_BYTES`). */
export const MAX_INFO_BYTES = 64 * 1024;
/** Longest lease TTL or presence window: one year (`jetpack.shared.rules.MAX_TTL_MS`). */
export const MAX_TTL_MS = 365 * 86_400_000;

/** The 19 message types (`jetpack.shared.MessageType`). */
export const MESSAGE_TYPES = [
  "task.created",
  "task.claimed",
  "task.assigned",
  "task.updated",
  "task.completed",
  "task.failed",
  "task.retry_scheduled",
  "task.progress",
  "task.available",
  "task.interrupted",
  "agent.started",
  "agent.stopped",
  "agent.error",
  "agent.status",
  "file.lock",
  "file.unlock",
  "coordination.request",
  "coordination.response",
  "heartbeat",
] as const;
export const AGENT_STATUSES = ["idle", "busy", "error", "offline"] as const;

export const MessageType = z.enum(MESSAGE_TYPES);
/** A message type, or `*` (every type) in a subscription. */
export const SubscriptionType = z.union([MessageType, z.literal("*")]);
export const AgentStatus = z.enum(AGENT_STATUSES);
export const Payload = jsonObject(MAX_PAYLOAD_BYTES);
export const Info = jsonObject(MAX_INFO_BYTES);
export const CorrelationId = TextOf(200);
export const TtlMs = z
  .number()
  .int()
  .positive("must be a positive integer of milliseconds")
  .max(MAX_TTL_MS, "must be at most one year");
/** A path or glob as given; the routes normalise it (`paths.ts`) and name `path` in refusals. */
export const PathInput = z.string().min(1).max(8192);
const Flag = z.enum(["true", "false"]).optional();

export const MessageSchema = z
  .object({
    id: Identifier,
    type: MessageType,
    from_agent: Identifier,
    to_agent: Identifier.nullable(),
    payload: z.record(z.string(), z.unknown()),
    timestamp: Timestamp,
    correlation_id: z.string().nullable(),
    ack_required: z.boolean(),
    seq: z.number().int().min(0),
  })
  .openapi("Message");
export type Message = z.infer<typeof MessageSchema>;

/** What a sender chooses; the mailbox adds the sender, time and seq (and an id if none). */
export const OutgoingSchema = z
  .object({
    id: Identifier.openapi({ description: "Chosen by the sender so a repeat is recognised." }),
    type: MessageType,
    to_agent: Identifier.nullish().openapi({ description: "Recipient; omitted or null = broadcast." }),
    payload: Payload.default({}),
    correlation_id: CorrelationId.nullish(),
    ack_required: z.boolean().nullish().openapi({ description: "Default: false broadcast, true direct." }),
  })
  .strict();
export type Outgoing = z.infer<typeof OutgoingSchema>;

export const PublishSchema = OutgoingSchema.extend({
  id: Identifier.nullish().openapi({
    description: "Message id; a repeat with the same id returns the first (no second delivery).",
  }),
  from_agent: Identifier.openapi({ description: "The sender (an agent-bound token: its own agent)." }),
})
  .strict()
  .openapi("Publish");

export const SubscribeQuery = z.object({
  agent_id: Identifier,
  since: z.coerce
    .number()
    .int()
    .min(0)
    .optional()
    .openapi({ description: "Resume: everything after this seq. Omitted: the unacknowledged direct "
      + "messages, then broadcasts after the agent's saved cursor (or from now)." }),
  from: z.coerce
    .number()
    .int()
    .min(0)
    .optional()
    .openapi({ description: "With `since`: broadcasts only after this seq (the `hello` frame's `from`)." }),
  types: z
    .string()
    .max(1000)
    .optional()
    .openapi({ description: "Comma-separated message types (or `*`) to receive; more later by a `sub` frame." }),
});

export const InboxQuery = z.object({
  agent_id: Identifier,
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
  include_acked: Flag,
});
export const MessageList = z.object({ messages: z.array(MessageSchema) }).openapi("MessageList");

export const AckSchema = z
  .object({ agent_id: Identifier, message_id: TextOf(200).pipe(z.string().min(1)) })
  .strict()
  .openapi("Ack");

export const HeartbeatSchema = z
  .object({ agent_id: Identifier, status: AgentStatus.default("idle"), info: Info.default({}) })
  .strict()
  .openapi("Heartbeat");

export const AgentsQuery = z.object({
  window_ms: z.coerce.number().int().min(1).max(MAX_TTL_MS).default(90_000),
  include_offline: Flag,
});
export const AgentPresenceSchema = z
  .object({
    agent_id: Identifier,
    status: AgentStatus,
    last_seen: Timestamp,
    online: z.boolean(),
    info: z.record(z.string(), z.unknown()),
  })
  .openapi("AgentPresence");
export type AgentPresence = z.infer<typeof AgentPresenceSchema>;

export const DeadLetterInput = z
  .object({
    agent_id: Identifier,
    message: MessageSchema,
    handler: TextOf(500),
    error: TextOf(10_000),
    attempts: z.number().int().min(1).max(1000),
  })
  .strict()
  .openapi("DeadLetterInput");
export const DeadLetterSchema = DeadLetterInput.omit({ agent_id: true })
  .extend({ id: z.number().int(), failed_at: Timestamp })
  .openapi("DeadLetter");
export type DeadLetter = z.infer<typeof DeadLetterSchema>;
export const DeadLetterQuery = z.object({
  agent_id: Identifier,
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
});

export const LeaseSchema = z
  .object({
    path: z.string(),
    agent_id: Identifier,
    exclusive: z.boolean(),
    acquired_at: Timestamp,
    expires_at: Timestamp,
    fencing_token: z.number().int().min(1),
  })
  .openapi("Lease");
export type Lease = z.infer<typeof LeaseSchema>;

export const LeaseRequest = z
  .object({ path: PathInput, agent_id: Identifier, ttl_ms: TtlMs, exclusive: z.boolean().default(true) })
  .strict()
  .openapi("LeaseRequest");
export const LeaseGrant = z
  .object({
    acquired: z.boolean(),
    lease: LeaseSchema.nullable().openapi({ description: "The grant, with its fencing token." }),
    held_by: LeaseSchema.nullable().openapi({ description: "When refused: the lease in the way." }),
  })
  .openapi("LeaseGrant");
export type LeaseGrant = z.infer<typeof LeaseGrant>;

export const RenewRequest = z
  .object({ path: PathInput, agent_id: Identifier, ttl_ms: TtlMs })
  .strict()
  .openapi("RenewRequest");

export const ReleaseQuery = z.object({
  path: PathInput,
  agent_id: Identifier,
  fencing_token: z.coerce
    .number()
    .int()
    .min(1)
    .optional()
    .openapi({ description: "Release only if the lease still carries this grant's token." }),
});

export const LeaseStatusSchema = z
  .object({
    path: z.string(),
    is_leased: z.boolean(),
    agent_id: z.string().nullable(),
    expires_at: Timestamp.nullable(),
    exclusive: z.boolean().nullable(),
    fencing_token: z.number().int().nullable(),
    pattern: z.string().nullable(),
  })
  .openapi("LeaseStatus");
export type LeaseStatus = z.infer<typeof LeaseStatusSchema>;

// -- WebSocket frames, client → mailbox -------------------------------------------------

const Ref = z.string().min(1).max(64);

/** Publish (broadcast, or direct with `to_agent`) as the socket's agent; answered `ok` or `error`. */
export const PubFrame = z.object({ op: z.literal("pub"), ref: Ref, m: OutgoingSchema }).strict();
/** Replace the socket's subscriptions; broadcasts of new types after `from` are replayed. */
export const SubFrame = z
  .object({ op: z.literal("sub"), types: z.array(SubscriptionType).max(32), from: z.number().int().min(0) })
  .strict();
/** Direct messages (to the socket's agent) handled without needing an acknowledgement; with a `ref`, answered `ok`. */
export const ReadFrame = z
  .object({ op: z.literal("read"), ref: Ref.optional(), ids: z.array(TextOf(200)).max(1000) })
  .strict();
/** The agent's handlers are done up to `seq` (where a fresh connection resumes). */
export const CursorFrame = z.object({ op: z.literal("cursor"), seq: z.number().int().min(0) }).strict();
/** The next page of a replay. */
export const MoreFrame = z.object({ op: z.literal("more") }).strict();
export const ClientFrame = z.discriminatedUnion("op", [PubFrame, SubFrame, ReadFrame, CursorFrame, MoreFrame]);
export type ClientFrame = z.infer<typeof ClientFrame>;

// -- WebSocket frames, client → leases (each answered `ok` with `r`, or `error`) ----------

const AcquireFrame = z
  .object({ op: z.literal("acquire"), ref: Ref, path: PathInput, ttl_ms: TtlMs, exclusive: z.boolean() })
  .strict();
const RenewFrame = z.object({ op: z.literal("renew"), ref: Ref, path: PathInput, ttl_ms: TtlMs }).strict();
const ReleaseFrame = z
  .object({ op: z.literal("release"), ref: Ref, path: PathInput, fencing_token: z.number().int().min(1).nullish() })
  .strict();
const StatusFrame = z.object({ op: z.literal("status"), ref: Ref, path: PathInput }).strict();
const ListFrame = z.object({ op: z.literal("list"), ref: Ref }).strict();
export const LeaseFrame = z.discriminatedUnion("op", [AcquireFrame, RenewFrame, ReleaseFrame, StatusFrame, ListFrame]);
export type LeaseFrame = z.infer<typeof LeaseFrame>;
