/**
 * zod schemas of the task routes. Each mirrors a pydantic model of
 * `jetpack.shared` (`Task`, `TaskInput`, `TaskUpdate`, the claim arguments):
 * same field names, same limits, so the Worker refuses exactly what the
 * Python client refuses (a test compares the two).
 */
import { z } from "@hono/zod-openapi";
import {
  Identifier,
  JsonObject,
  MAX_TEXT_CHARS,
  Str,
  Timestamp,
} from "@jetpack/gateway";

export const MAX_TITLE_CHARS = 500;
export const MAX_LIST_ITEMS = 1_000;
/** Longest claim TTL or back-off base: one year. */
export const MAX_TTL_MS = 365 * 86_400_000;

export const STATUSES = ["pending", "ready", "claimed", "in_progress", "blocked", "completed", "failed"] as const;
export const HELD: ReadonlySet<string> = new Set(["claimed", "in_progress"]);
export const PRIORITIES = ["low", "medium", "high", "critical"] as const;
export const FAILURE_TYPES = ["timeout", "error", "stalled", "blocked"] as const;

export const Status = z.enum(STATUSES);
export const Priority = z.enum(PRIORITIES);
export const FailureType = z.enum(FAILURE_TYPES);

export const Title = Str().min(1).max(MAX_TITLE_CHARS);
export const Text = Str().max(MAX_TEXT_CHARS);
export const Label = Str().min(1).max(200);
export const Labels = z.array(Label).max(MAX_LIST_ITEMS);
export const IdList = z.array(Identifier).max(MAX_LIST_ITEMS);
export const Minutes = z.number().int().min(0).max(10_000_000);
export const Branch = Str().max(255);
export const TtlMs = z.number().int().positive("must be a positive integer of milliseconds").max(MAX_TTL_MS, "must be at most one year");
export const AgentId = Identifier;

const dedupe = (items: string[]): string[] => [...new Set(items)];

export const TaskSchema = z
  .object({
    id: Identifier,
    title: Title,
    description: Text.nullable().default(null),
    status: Status.default("pending"),
    priority: Priority.default("medium"),
    dependencies: IdList.default([]),
    blockers: Labels.default([]),
    required_skills: Labels.default([]),
    estimated_minutes: Minutes.nullable().default(null),
    actual_minutes: Minutes.nullable().default(null),
    tags: Labels.default([]),
    retry_count: z.number().int().min(0).default(0),
    max_retries: z.number().int().min(0).max(100).default(2),
    branch: Branch.nullable().default(null),
    origin_branch: Branch.nullable().default(null),
    target_branches: Labels.default([]),
    assigned_agent: Identifier.nullable().default(null),
    last_error: Text.nullable().default(null),
    failure_type: FailureType.nullable().default(null),
    last_attempt_at: Timestamp.nullable().default(null),
    created_at: Timestamp,
    updated_at: Timestamp,
    completed_at: Timestamp.nullable().default(null),
    metadata: JsonObject.default({}),
    not_before: Timestamp.nullable().default(null),
    claim_expires_at: Timestamp.nullable().default(null),
    version: z.number().int().min(1).default(1),
  })
  .strict()
  .openapi("Task");
export type Task = z.infer<typeof TaskSchema>;

export const TaskInputSchema = z
  .object({
    id: Identifier.nullable().default(null),
    title: Title,
    description: Text.nullable().default(null),
    status: Status.refine((s) => !HELD.has(s), "a new task cannot start claimed; claim it instead").default("pending"),
    priority: Priority.default("medium"),
    dependencies: IdList.default([]).transform(dedupe),
    blockers: Labels.default([]),
    required_skills: Labels.default([]).transform(dedupe),
    estimated_minutes: Minutes.nullable().default(null),
    tags: Labels.default([]).transform(dedupe),
    max_retries: z.number().int().min(0).max(100).default(2),
    branch: Branch.nullable().default(null),
    origin_branch: Branch.nullable().default(null),
    target_branches: Labels.default([]),
    metadata: JsonObject.default({}),
  })
  .strict()
  .openapi("TaskInput");
export type TaskInput = z.infer<typeof TaskInputSchema>;

const notNull = <T extends z.ZodType>(schema: T) => schema.optional();

export const TaskUpdateSchema = z
  .object({
    title: notNull(Title),
    description: Text.nullable().optional(),
    status: notNull(Status),
    priority: notNull(Priority),
    dependencies: notNull(IdList),
    blockers: notNull(Labels),
    required_skills: Labels.nullable().optional(),
    estimated_minutes: Minutes.nullable().optional(),
    actual_minutes: Minutes.nullable().optional(),
    tags: Labels.nullable().optional(),
    max_retries: z.number().int().min(0).max(100).optional(),
    branch: Branch.nullable().optional(),
    origin_branch: Branch.nullable().optional(),
    target_branches: Labels.nullable().optional(),
    last_error: Text.nullable().optional(),
    failure_type: FailureType.nullable().optional(),
    metadata: JsonObject.nullable().optional(),
  })
  .strict()
  .openapi("TaskUpdate");
export type TaskUpdate = z.infer<typeof TaskUpdateSchema>;

export const CreateBatchSchema = z
  .object({ tasks: z.array(TaskInputSchema).max(100_000) })
  .strict()
  .openapi("TaskBatch");

export const ImportSchema = z
  .object({ tasks: z.array(TaskSchema).max(100_000), replace: z.boolean().default(false) })
  .strict()
  .openapi("TaskImport");

export const ClaimSchema = z
  .object({ agent_id: AgentId, ttl_ms: TtlMs.nullish() })
  .strict()
  .openapi("ClaimRequest");

export const ClaimNextSchema = z
  .object({ agent_id: AgentId, skills: z.array(Label).max(MAX_LIST_ITEMS).nullish(), ttl_ms: TtlMs.nullish() })
  .strict()
  .openapi("ClaimNextRequest");

export const HolderSchema = z.object({ agent_id: AgentId }).strict().openapi("HolderRequest");

export const CompleteSchema = z
  .object({
    agent_id: AgentId,
    actual_minutes: Minutes.nullish(),
    result: JsonObject.nullish(),
  })
  .strict()
  .openapi("CompleteRequest");

export const FailSchema = z
  .object({
    agent_id: AgentId,
    error: Text,
    failure_type: FailureType.default("error"),
    retry_base_ms: z.number().int().min(0).max(MAX_TTL_MS).nullish(),
  })
  .strict()
  .openapi("FailRequest");

const csv = <T extends readonly [string, ...string[]]>(values: T) =>
  z
    .string()
    .transform((text) => text.split(",").filter((part) => part.length > 0))
    .pipe(z.array(z.enum(values)));

export const ListQuerySchema = z.object({
  status: csv(STATUSES).optional().openapi({ description: "Comma-separated statuses (any of)." }),
  priority: csv(PRIORITIES).optional().openapi({ description: "Comma-separated priorities (any of)." }),
  assigned_agent: z.string().max(128).optional(),
  held: z.enum(["true", "false"]).optional().openapi({ description: "Only claimed or in-progress tasks." }),
  branch: z.string().max(255).optional(),
  tag: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(100_000).optional(),
  offset: z.coerce.number().int().min(0).default(0),
});

export const ReadyQuerySchema = z.object({ limit: z.coerce.number().int().min(0).optional() });

export const TaskList = z.object({ tasks: z.array(TaskSchema) }).openapi("TaskList");
export const MaybeTask = z.object({ task: TaskSchema.nullable() }).openapi("MaybeTask");

export const StatsSchema = z
  .object({
    total: z.number().int(),
    by_status: z.record(z.string(), z.number().int()),
    by_priority: z.record(z.string(), z.number().int()),
    ready: z.number().int(),
    avg_completion_minutes: z.number().nullable(),
  })
  .openapi("TaskStats");
