/**
 * The task routes: HTTP in, one TaskStore call, JSON out. Validation is the
 * zod schemas'; the rules are the store's; the caller's project and agent come
 * from the gateway (`c.var.db`, `actAs`).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { actAs, ErrorSchema, type GatewayApp, Identifier, type JetpackModule, type ScopedDb } from "@jetpack/gateway";
import {
  ClaimNextSchema,
  ClaimSchema,
  CompleteSchema,
  CreateBatchSchema,
  FailSchema,
  HolderSchema,
  ImportSchema,
  ListQuerySchema,
  MaybeTask,
  ReadyQuerySchema,
  StatsSchema,
  TaskInputSchema,
  TaskList,
  TaskSchema,
  TaskUpdateSchema,
} from "./schemas";
import { DEFAULT_CLAIM_TTL_MS, DEFAULT_RETRY_BASE_MS, TaskStore } from "./store";

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
const missing = { 404: json(ErrorSchema, "No such task in this project.") };
const conflictAnswer = { 409: json(ErrorSchema, "Conflicts with the current state.") };
const IdParam = z.object({ id: Identifier });
const security = [{ bearer: [] }];
const tags = ["tasks"];

function register(app: GatewayApp): void {
  const store = (db: ScopedDb): TaskStore => new TaskStore(db);

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/tasks",
      summary: "Create a task",
      tags,
      security,
      request: body(TaskInputSchema),
      responses: { 201: json(TaskSchema, "Created."), ...conflictAnswer, ...refusals },
    }),
    async (c) => {
      const [task] = await store(c.var.db).create([c.req.valid("json")]);
      return c.json(task as z.infer<typeof TaskSchema>, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/tasks/batch",
      summary: "Create many tasks, all or none (later items may depend on earlier ones)",
      tags,
      security,
      request: body(CreateBatchSchema),
      responses: { 201: json(TaskList, "Created, in order."), ...conflictAnswer, ...refusals },
    }),
    async (c) => c.json({ tasks: await store(c.var.db).create(c.req.valid("json").tasks) }, 201),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/tasks/import",
      summary: "Write whole tasks as given (imports, migrations, sync), all or none",
      tags,
      security,
      request: body(ImportSchema),
      responses: { 200: json(z.object({ count: z.number().int() }), "Written."), ...conflictAnswer, ...refusals },
    }),
    async (c) => {
      const { tasks, replace } = c.req.valid("json");
      return c.json({ count: await store(c.var.db).importTasks(tasks, replace) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/tasks",
      summary: "List tasks in creation order; filters combine",
      tags,
      security,
      request: { query: ListQuerySchema },
      responses: { 200: json(TaskList, "Matching tasks."), ...refusals },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const tasks = await store(c.var.db).list({
        status: query.status,
        priority: query.priority,
        agent: query.assigned_agent,
        heldOnly: query.held === "true",
        branch: query.branch,
        tag: query.tag,
        limit: query.limit ?? -1,
        offset: query.offset,
      });
      return c.json({ tasks }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/tasks/ready",
      summary: "Ready tasks in claim order (priority, then age)",
      tags,
      security,
      request: { query: ReadyQuerySchema },
      responses: { 200: json(TaskList, "Ready tasks."), ...refusals },
    }),
    async (c) => c.json({ tasks: await store(c.var.db).ready(c.req.valid("query").limit) }, 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/tasks/stats",
      summary: "Counts by status and priority, ready count, mean completion time",
      tags,
      security,
      responses: { 200: json(StatsSchema, "Stats."), ...refusals },
    }),
    async (c) => c.json(await store(c.var.db).stats(), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/tasks/claim-next",
      summary: "Atomically claim the best ready task the agent has the skills for",
      tags,
      security,
      request: body(ClaimNextSchema),
      responses: { 200: json(MaybeTask, "The claimed task, or null."), ...refusals },
    }),
    async (c) => {
      const { agent_id, skills, ttl_ms } = c.req.valid("json");
      actAs(c, agent_id);
      const task = await store(c.var.db).claimNext(agent_id, skills ?? null, ttl_ms ?? DEFAULT_CLAIM_TTL_MS);
      return c.json({ task }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/tasks/recover",
      summary: "Return every lapsed claim to the queue now",
      tags,
      security,
      responses: { 200: json(TaskList, "The tasks recovered."), ...refusals },
    }),
    async (c) => c.json({ tasks: await store(c.var.db).recover() }, 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/tasks/{id}",
      summary: "One task",
      tags,
      security,
      request: { params: IdParam },
      responses: { 200: json(TaskSchema, "The task."), ...missing, ...refusals },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const task = await store(c.var.db).get(id);
      if (task === null) {
        return c.json({ error: { code: "not_found", message: `task ${JSON.stringify(id)} not found` } }, 404);
      }
      return c.json(task, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: "/api/tasks/{id}",
      summary: "Change the given fields (claim fields change only through the claim routes)",
      tags,
      security,
      request: { params: IdParam, ...body(TaskUpdateSchema) },
      responses: { 200: json(TaskSchema, "The task as stored."), ...missing, ...conflictAnswer, ...refusals },
    }),
    async (c) => c.json(await store(c.var.db).update(c.req.valid("param").id, c.req.valid("json")), 200),
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/tasks/{id}",
      summary: "Delete a task nobody depends on",
      tags,
      security,
      request: { params: IdParam },
      responses: {
        200: json(z.object({ deleted: z.literal(true) }), "Deleted."),
        ...missing,
        ...conflictAnswer,
        ...refusals,
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      if (!(await store(c.var.db).delete(id))) {
        return c.json({ error: { code: "not_found", message: `task ${JSON.stringify(id)} not found` } }, 404);
      }
      return c.json({ deleted: true as const }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/tasks/{id}/claim",
      summary: "Claim one ready task (409 not_claimable when it is not ready or taken)",
      tags,
      security,
      request: { params: IdParam, ...body(ClaimSchema) },
      responses: { 200: json(TaskSchema, "Claimed."), ...missing, ...conflictAnswer, ...refusals },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const { agent_id, ttl_ms } = c.req.valid("json");
      actAs(c, agent_id);
      const task = await store(c.var.db).claimOne(id, agent_id, ttl_ms ?? DEFAULT_CLAIM_TTL_MS);
      if (task === null) {
        return c.json(
          { error: { code: "not_claimable", message: `task ${JSON.stringify(id)} is not ready or already held` } },
          409,
        );
      }
      return c.json(task, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/tasks/{id}/renew",
      summary: "Extend the holder's claim",
      tags,
      security,
      request: { params: IdParam, ...body(ClaimSchema) },
      responses: { 200: json(TaskSchema, "Renewed."), ...missing, ...conflictAnswer, ...refusals },
    }),
    async (c) => {
      const { agent_id, ttl_ms } = c.req.valid("json");
      actAs(c, agent_id);
      const task = await store(c.var.db).renew(c.req.valid("param").id, agent_id, ttl_ms ?? DEFAULT_CLAIM_TTL_MS);
      return c.json(task, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/tasks/{id}/start",
      summary: "Mark a held task in progress",
      tags,
      security,
      request: { params: IdParam, ...body(HolderSchema) },
      responses: { 200: json(TaskSchema, "Started."), ...missing, ...conflictAnswer, ...refusals },
    }),
    async (c) => {
      const { agent_id } = c.req.valid("json");
      actAs(c, agent_id);
      return c.json(await store(c.var.db).start(c.req.valid("param").id, agent_id), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/tasks/{id}/release",
      summary: "Give a held task back without using a retry",
      tags,
      security,
      request: { params: IdParam, ...body(HolderSchema) },
      responses: { 200: json(z.object({ released: z.boolean() }), "Whether it was released."), ...refusals },
    }),
    async (c) => {
      const { agent_id } = c.req.valid("json");
      actAs(c, agent_id);
      return c.json({ released: await store(c.var.db).release(c.req.valid("param").id, agent_id) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/tasks/{id}/complete",
      summary: "Finish a held task",
      tags,
      security,
      request: { params: IdParam, ...body(CompleteSchema) },
      responses: { 200: json(TaskSchema, "Completed."), ...missing, ...conflictAnswer, ...refusals },
    }),
    async (c) => {
      const { agent_id, actual_minutes, result } = c.req.valid("json");
      actAs(c, agent_id);
      const task = await store(c.var.db).complete(
        c.req.valid("param").id,
        agent_id,
        actual_minutes ?? null,
        result ?? null,
      );
      return c.json(task, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/tasks/{id}/fail",
      summary: "Record a failed attempt: back off and retry, or fail and block dependants",
      tags,
      security,
      request: { params: IdParam, ...body(FailSchema) },
      responses: { 200: json(TaskSchema, "The task after the failure."), ...missing, ...conflictAnswer, ...refusals },
    }),
    async (c) => {
      const { agent_id, error, failure_type, retry_base_ms } = c.req.valid("json");
      actAs(c, agent_id);
      const task = await store(c.var.db).fail(
        c.req.valid("param").id,
        agent_id,
        error,
        failure_type,
        retry_base_ms ?? DEFAULT_RETRY_BASE_MS,
      );
      return c.json(task, 200);
    },
  );
}

const tasks: JetpackModule = { name: "tasks", register, keyInFirstCall: true };
export default tasks;
