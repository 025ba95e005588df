/**
 * The memory routes: HTTP in, one call to the project's memory object
 * (`MemoryDO`, `store.ts`), JSON out. Validation is the zod schemas'; the
 * rules are the store's; the caller's project comes from the gateway
 * (`projectOf`), and picks the object (`idFromName(project)`), so no route can
 * reach another project's memories.
 *
 * Reads of the whole store start with `_` (`/api/memory/_stats`), which no
 * memory id can contain, so they never shadow `GET /api/memory/{id}`.
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  ApiError,
  ErrorSchema,
  type GatewayApp,
  type GatewayEnv,
  Identifier,
  type JetpackModule,
  projectOf,
  readOnly,
} from "@jetpack/gateway";
import type { Context } from "hono";
import { decodeCursor, encodeCursor } from "./rows";
import {
  BackfillSchema,
  BatchSchema,
  CompactSchema,
  HybridAnswer,
  HybridSchema,
  ImportanceSchema,
  IndexStateSchema,
  LimitQuerySchema,
  ListQuerySchema,
  MemoryEntrySchema,
  MemoryList,
  MemoryPageSchema,
  MemoryStatsSchema,
  MemoryType,
  type MemoryWrite,
  MemoryWriteSchema,
  SearchSchema,
  SemanticSchema,
  StoreQuerySchema,
  Waiting,
} from "./schemas";
import { type Failure, isFailure, type Keeping, type MemoryDO, type WriteItem } from "./store";
import type { MemoryEnv } from "./vectorize";
import { CALLER_MODEL } from "./schemas";

export { MemoryDO } from "./store";
export { FakeVectorize, FakeWorkersAI } from "./fakes";

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { "application/json": { schema } },
  description,
});
const body = <T extends z.ZodType>(schema: T) => ({
  body: { content: { "application/json": { schema } }, required: true },
});
const refusals = {
  401: json(ErrorSchema, "Missing, unknown or revoked token."),
  422: json(ErrorSchema, "Invalid input; `field` names it."),
};
const missing = { 404: json(ErrorSchema, "No such memory in this project.") };
const IdParam = z.object({ id: Identifier });
const security = [{ bearer: [] }];
const tags = ["memory"];
const DEFAULT_PROTECTED = ["codebase_knowledge"];

/** The caller's project and its memory object. */
function memoryOf(c: Context<GatewayEnv>): { project: string; memory: DurableObjectStub<MemoryDO> } {
  const { project } = projectOf(c);
  const namespace = (c.env as MemoryEnv).MEMORY as DurableObjectNamespace<MemoryDO>;
  return { project, memory: namespace.get(namespace.idFromName(project)) };
}

/** The value, or the store's refusal as an ApiError. */
function ok<T>(value: T | Failure): T {
  if (isFailure(value)) {
    const { status, code, message, field } = value.error;
    throw new ApiError(status, code, message, field);
  }
  return value;
}

const notFoundBody = (id: string) => ({ error: { code: "not_found", message: `memory ${JSON.stringify(id)} not found` } });

function toItem(write: MemoryWrite): WriteItem {
  return {
    id: write.id,
    type: write.type,
    content: write.content,
    importance: write.importance,
    metadata: write.metadata,
    embedding: write.embedding,
    embedding_model: write.embedding === null ? null : (write.embedding_model ?? CALLER_MODEL),
  };
}

function keeping(maxEntries: number | null | undefined, protectedTypes: readonly string[] | null | undefined): Keeping {
  return { maxEntries: maxEntries ?? null, protectedTypes: protectedTypes ?? DEFAULT_PROTECTED };
}

/** POST routes that only read: their arguments travel in the body; no audit row unless refused. */
const SEARCHES = ["/api/memory/search", "/api/memory/semantic", "/api/memory/hybrid"];

function register(app: GatewayApp): void {
  for (const path of SEARCHES) app.use(path, readOnly());
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/memory",
      summary: "Store one memory (embedded by the Worker when it has no vector and Workers AI is bound)",
      tags,
      security,
      request: { query: StoreQuerySchema, ...body(MemoryWriteSchema) },
      responses: { 201: json(z.object({ id: Identifier }), "Stored."), 409: json(ErrorSchema, "The id exists."), ...refusals },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      const query = c.req.valid("query");
      const stored = ok(
        (await memory.store(project, [toItem(c.req.valid("json"))], keeping(query.max_entries, query.protected_types))) as
          | { ids: string[] }
          | Failure,
      );
      return c.json({ id: stored.ids[0] ?? "" }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/memory/batch",
      summary: "Store many memories in one transaction: all or none",
      tags,
      security,
      request: body(BatchSchema),
      responses: {
        201: json(z.object({ ids: z.array(Identifier) }), "Stored, in order."),
        409: json(ErrorSchema, "An id exists or repeats."),
        ...refusals,
      },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      const batch = c.req.valid("json");
      const items = batch.memories.map(toItem);
      const stored = ok(
        (await memory.store(project, items, keeping(batch.max_entries, batch.protected_types))) as { ids: string[] } | Failure,
      );
      return c.json({ ids: stored.ids }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/memory",
      summary: "Keyset pages, newest first (by insertion), stable under writes",
      tags,
      security,
      request: { query: ListQuerySchema },
      responses: { 200: json(MemoryPageSchema, "One page."), ...refusals },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      const { limit, cursor, type } = c.req.valid("query");
      let before: number | null = null;
      if (cursor !== undefined) {
        const seq = decodeCursor(cursor, type ?? null);
        if (typeof seq === "string") throw new ApiError(422, "invalid", seq, "cursor");
        before = seq;
      }
      const page = (await memory.list(project, limit, before, type ?? null)) as {
        items: z.infer<typeof MemoryEntrySchema>[];
        last: number | null;
        hasMore: boolean;
      };
      const next = page.last === null ? null : encodeCursor(page.last, type ?? null);
      return c.json({ items: page.items, next_cursor: next, has_more: page.hasMore }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/memory/_recent",
      summary: "Newest first",
      tags,
      security,
      request: { query: LimitQuerySchema },
      responses: { 200: json(MemoryList, "Memories."), ...refusals },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      const memories = (await memory.recent(project, c.req.valid("query").limit)) as z.infer<typeof MemoryEntrySchema>[];
      return c.json({ memories }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/memory/_stats",
      summary: "Counts by type, mean importance, accesses, vectors, the project's vector space",
      tags,
      security,
      responses: { 200: json(MemoryStatsSchema, "Stats."), ...refusals },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      return c.json((await memory.stats(project)) as z.infer<typeof MemoryStatsSchema>, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/memory/_backfill",
      summary: "The oldest memories waiting for a vector (for a client that embeds them)",
      tags,
      security,
      request: { query: LimitQuerySchema },
      responses: { 200: json(Waiting, "Ids and contents, oldest first."), ...refusals },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      const waiting = (await memory.unembedded(project, c.req.valid("query").limit)) as { id: string; content: string }[];
      return c.json({ memories: waiting }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/memory/_index",
      summary: "The project's vector index: built-in or Vectorize, and how far Vectorize lags",
      tags,
      security,
      responses: { 200: json(IndexStateSchema, "Index state."), ...refusals },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      return c.json((await memory.indexState(project)) as z.infer<typeof IndexStateSchema>, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/memory/type/{type}",
      summary: "Memories of one type, most important first (then most recently used)",
      tags,
      security,
      request: { params: z.object({ type: MemoryType }), query: LimitQuerySchema },
      responses: { 200: json(MemoryList, "Memories."), ...refusals },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      const { type } = c.req.valid("param");
      const memories = (await memory.byType(project, type, c.req.valid("query").limit)) as z.infer<typeof MemoryEntrySchema>[];
      return c.json({ memories }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/memory/backfill",
      summary: "Give waiting memories a vector: the client's (vectors) or Workers AI's (batch_size)",
      tags,
      security,
      request: body(BackfillSchema),
      responses: { 200: json(z.object({ processed: z.number().int() }), "How many got one."), ...refusals },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      const request = c.req.valid("json");
      const processed =
        request.vectors != null
          ? await memory.fillVectors(project, request.vectors, request.embedding_model ?? CALLER_MODEL)
          : await memory.backfillWithAi(project, request.batch_size ?? 32);
      return c.json({ processed: ok(processed as number | Failure) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/memory/search",
      summary: "Full-text BM25 search (any text is safe; exact identifiers are found)",
      tags,
      security,
      request: body(SearchSchema),
      responses: { 200: json(MemoryList, "Best first; score is -bm25."), ...refusals },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      const { query, limit } = c.req.valid("json");
      const memories = (await memory.search(project, query, limit)) as z.infer<typeof MemoryEntrySchema>[];
      return c.json({ memories }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/memory/semantic",
      summary: "Nearest by cosine to a vector (or to a query Workers AI embeds); text search without vectors",
      tags,
      security,
      request: body(SemanticSchema),
      responses: {
        200: json(MemoryList.extend({ by: z.enum(["vector", "text"]) }), "Best first; score is the cosine."),
        ...refusals,
      },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      const request = c.req.valid("json");
      const answer = ok(
        (await memory.semantic(
          project,
          request.embedding ?? null,
          request.embedding_model ?? null,
          request.query ?? null,
          request.limit,
        )) as { memories: z.infer<typeof MemoryEntrySchema>[]; by: "vector" | "text" } | Failure,
      );
      return c.json(answer, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/memory/hybrid",
      summary: "The BM25 list and the vector list of a query, each `depth` deep, for the client to fuse",
      tags,
      security,
      request: body(HybridSchema),
      responses: { 200: json(HybridAnswer, "Both ranked lists and their memories."), ...refusals },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      const request = c.req.valid("json");
      const answer = ok(
        (await memory.hybrid(project, request.query, request.embedding ?? null, request.embedding_model ?? null, request.depth)) as
          | z.infer<typeof HybridAnswer>
          | Failure,
      );
      return c.json(answer, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/memory/compact",
      summary: "Delete below an importance threshold, or trim to max_entries by retention score",
      tags,
      security,
      request: body(CompactSchema),
      responses: { 200: json(z.object({ removed: z.number().int() }), "How many went."), ...refusals },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      const request = c.req.valid("json");
      const removed =
        request.threshold != null
          ? await memory.compact(project, request.threshold, request.protected_types)
          : await memory.adaptiveCompact(project, request.max_entries ?? 1, request.protected_types);
      return c.json({ removed: removed as number }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/memory/{id}",
      summary: "One memory; counts the access (access_count, last_accessed)",
      tags,
      security,
      request: { params: IdParam },
      responses: { 200: json(MemoryEntrySchema, "The memory."), ...missing, ...refusals },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      const { id } = c.req.valid("param");
      const entry = (await memory.retrieve(project, id)) as z.infer<typeof MemoryEntrySchema> | null;
      if (entry === null) return c.json(notFoundBody(id), 404);
      return c.json(entry, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: "/api/memory/{id}",
      summary: "Set a memory's importance",
      tags,
      security,
      request: { params: IdParam, ...body(ImportanceSchema) },
      responses: { 200: json(MemoryEntrySchema, "The memory as stored."), ...missing, ...refusals },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      const { id } = c.req.valid("param");
      const entry = ok(
        (await memory.setImportance(project, id, c.req.valid("json").importance)) as z.infer<typeof MemoryEntrySchema> | Failure,
      );
      return c.json(entry, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/memory/{id}",
      summary: "Delete a memory (its vector and its text index with it)",
      tags,
      security,
      request: { params: IdParam },
      responses: { 200: json(z.object({ deleted: z.literal(true) }), "Deleted."), ...missing, ...refusals },
    }),
    async (c) => {
      const { project, memory } = memoryOf(c);
      const { id } = c.req.valid("param");
      if (!((await memory.remove(project, id)) as boolean)) return c.json(notFoundBody(id), 404);
      return c.json({ deleted: true as const }, 200);
    },
  );
}

const memory: JetpackModule = { name: "memory", register };
export default memory;
