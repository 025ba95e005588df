/**
 * zod schemas of the memory routes. Each mirrors a pydantic model of
 * `jetpack.shared` (`MemoryInput`, `MemoryEntry`, `MemoryStats`, `Page`): same
 * field names, same limits, so the Worker refuses what the Python client
 * refuses (a test compares them through the OpenAPI document). `MemoryWrite`
 * is `MemoryInput` plus `embedding_model`, the model that made `embedding`.
 */
import { z } from "@hono/zod-openapi";
import { Identifier, JsonObject, MAX_TEXT_CHARS, Str, Timestamp } from "@jetpack/gateway";
import { decodeVector, MAX_DIMENSIONS } from "./vectors";

export const MEMORY_TYPES = [
  "codebase_knowledge",
  "agent_learning",
  "pattern_recognition",
  "conversation_history",
  "decision_rationale",
  "test_failure_analysis",
  "quality_improvement",
  "regression_pattern",
  "successful_fix",
] as const;
export type MemoryTypeName = (typeof MEMORY_TYPES)[number];

/** `jetpack.cass`'s `MAX_LIMIT`: the largest `limit` or `batch_size`. */
export const MAX_LIMIT = 10_000;
/** Most memories one batch may store. */
export const MAX_BATCH = 100_000;
/** Model name of vectors the caller supplied (`jetpack.cass.CALLER_MODEL`). */
export const CALLER_MODEL = "caller";

export const MemoryType = z.enum(MEMORY_TYPES);
export const Content = Str().min(1).max(MAX_TEXT_CHARS);
export const Importance = z.number().min(0).max(1);
export const Limit = z.coerce.number().int().min(1).max(MAX_LIMIT);
export const ModelName = Str().min(1).max(200);
/** A search text: any string (an empty one finds nothing). */
export const Query = Str().max(MAX_TEXT_CHARS);

/**
 * A vector on the wire: base64 of little-endian float32 (what the Python client
 * sends: 4 bytes a value) or a JSON list of numbers; refused as
 * `MemoryInput.embedding` refuses it (size, finiteness, zero, float32 range).
 */
export const Embedding = z
  .union([
    z.string().max(((MAX_DIMENSIONS * 4 + 2) / 3) * 4 + 4),
    z.array(z.number()).max(MAX_DIMENSIONS + 1),
  ])
  .transform((value, ctx) => {
    const vector = decodeVector(value);
    if (typeof vector === "string") {
      ctx.addIssue({ code: "custom", message: vector });
      return z.NEVER;
    }
    return vector;
  })
  .openapi({
    type: "string",
    description: "Base64 of little-endian float32 values, or a list of numbers.",
  });

export const MemoryWriteSchema = z
  .object({
    id: Identifier.nullable().default(null),
    type: MemoryType,
    content: Content,
    importance: Importance.default(0.5),
    metadata: JsonObject.default({}),
    embedding: Embedding.nullable().default(null),
    embedding_model: ModelName.nullable().default(null).openapi({
      description: `The model that made \`embedding\` (the client's embedder, or "${CALLER_MODEL}").`,
    }),
  })
  .strict()
  .openapi("MemoryWrite");
export type MemoryWrite = z.infer<typeof MemoryWriteSchema>;

export const MemoryEntrySchema = z
  .object({
    id: Identifier,
    type: MemoryType,
    content: Content,
    importance: Importance,
    metadata: JsonObject,
    has_embedding: z.boolean(),
    embedding_model: z.string().nullable(),
    created_at: Timestamp,
    last_accessed: Timestamp,
    access_count: z.number().int().min(0),
    version: z.number().int().min(1),
    score: z.number().nullable(),
  })
  .openapi("MemoryEntry");
export type MemoryEntry = z.infer<typeof MemoryEntrySchema>;

export const MemoryStatsSchema = z
  .object({
    total: z.number().int(),
    by_type: z.record(z.string(), z.number().int()),
    avg_importance: z.number(),
    total_accesses: z.number().int(),
    with_embedding: z.number().int(),
    without_embedding: z.number().int(),
    embedding_model: z.string().nullable(),
    embedding_dimensions: z.number().int().nullable(),
  })
  .openapi("MemoryStats");
export type MemoryStats = z.infer<typeof MemoryStatsSchema>;

export const MemoryPageSchema = z
  .object({
    items: z.array(MemoryEntrySchema),
    next_cursor: z.string().nullable(),
    has_more: z.boolean(),
  })
  .openapi("MemoryPage");

export const MemoryList = z.object({ memories: z.array(MemoryEntrySchema) }).openapi("MemoryList");

const ProtectedTypes = z.array(MemoryType).max(MEMORY_TYPES.length);

/** How a write keeps the store's size (the client's `max_entries` and `protected_types`). */
const Keeping = {
  max_entries: z.number().int().min(1).nullish(),
  protected_types: ProtectedTypes.nullish(),
};

export const StoreQuerySchema = z.object({
  max_entries: z.coerce.number().int().min(1).optional(),
  protected_types: z
    .string()
    .transform((text) => text.split(",").filter((part) => part.length > 0))
    .pipe(ProtectedTypes)
    .optional()
    .openapi({ description: "Comma-separated memory types evicted last." }),
});

export const BatchSchema = z
  .object({ memories: z.array(MemoryWriteSchema).max(MAX_BATCH), ...Keeping })
  .strict()
  .openapi("MemoryBatch");

export const SearchSchema = z
  .object({ query: Query, limit: Limit.default(10) })
  .strict()
  .openapi("MemorySearch");

export const SemanticSchema = z
  .object({
    embedding: Embedding.nullish(),
    embedding_model: ModelName.nullish(),
    query: Query.nullish(),
    limit: Limit.default(10),
  })
  .strict()
  .refine((body) => body.embedding != null || body.query != null, {
    message: "give an embedding or a query",
    path: ["embedding"],
  })
  .openapi("MemorySemanticSearch");

export const HybridSchema = z
  .object({
    query: Query,
    embedding: Embedding.nullish(),
    embedding_model: ModelName.nullish(),
    depth: z.number().int().min(1).max(MAX_LIMIT * 5).default(50),
  })
  .strict()
  .openapi("MemoryHybridSearch");

export const Ranked = z.array(z.object({ id: Identifier, score: z.number() }));

export const HybridAnswer = z
  .object({ text: Ranked, semantic: Ranked, memories: z.array(MemoryEntrySchema) })
  .openapi("MemoryHybridCandidates");

export const CompactSchema = z
  .object({
    threshold: Importance.nullish(),
    max_entries: z.number().int().min(1).nullish(),
    protected_types: ProtectedTypes.default(["codebase_knowledge"]),
  })
  .strict()
  .refine((body) => (body.threshold == null) !== (body.max_entries == null), {
    message: "give either threshold (compact) or max_entries (adaptive compaction)",
    path: ["threshold"],
  })
  .openapi("MemoryCompact");

export const ImportanceSchema = z.object({ importance: Importance }).strict().openapi("MemoryImportance");

export const BackfillSchema = z
  .object({
    vectors: z
      .array(z.object({ id: Identifier, embedding: Embedding }).strict())
      .max(MAX_LIMIT)
      .nullish(),
    embedding_model: ModelName.nullish(),
    batch_size: Limit.nullish(),
  })
  .strict()
  .refine((body) => (body.vectors == null) !== (body.batch_size == null), {
    message: "give either vectors (embedded by the client) or batch_size (the Worker embeds)",
    path: ["vectors"],
  })
  .openapi("MemoryBackfill");

export const ListQuerySchema = z.object({
  limit: Limit.default(50),
  cursor: z.string().max(200).optional(),
  type: MemoryType.optional(),
});

export const LimitQuerySchema = z.object({ limit: Limit.default(50) });

export const Waiting = z
  .object({ memories: z.array(z.object({ id: Identifier, content: z.string() })) })
  .openapi("MemoryBackfillQueue");

export const IndexStateSchema = z
  .object({
    index: z.enum(["built-in", "vectorize"]),
    vectors: z.number().int(),
    unconfirmed: z.number().int().openapi({ description: "Vectors Vectorize may not show yet (searched by the Worker meanwhile)." }),
    deletes_unconfirmed: z.number().int().openapi({ description: "Deletes Vectorize may not show yet (filtered out meanwhile)." }),
    embedding_model: z.string().nullable(),
    dimensions: z.number().int().nullable(),
  })
  .openapi("MemoryIndexState");
