/**
 * The task store on D1, for one project (through the gateway's `ScopedDb`).
 * Same semantics as `jetpack.shared.testing.InMemoryTaskStore` and
 * jetpack-beads: the conformance kit checks all three.
 *
 * Every write is one D1 batch (one transaction, all or nothing). Claims are one
 * `UPDATE … RETURNING` each, preceded in the same batch by the lapsed-claim
 * sweep, so a lapsed claim is requeued (as `stalled`, one retry used) before
 * anyone acts on it, and that requeue is kept even when the action is refused.
 * Graph edits guard themselves with a compare-and-set on the project's graph
 * version, so concurrent edits cannot close a cycle.
 */
import {
  ApiError,
  CHANGED,
  conflict,
  GuardFailed,
  invalid,
  jsonBytes,
  MAX_METADATA_BYTES,
  newId,
  notFound,
  type Row,
  type ScopedDb,
  type Sql,
  toIso,
} from "@jetpack/gateway";
import { rowToTask, type TaskRow, taskToRecord } from "./rows";
import {
  HELD,
  type Task,
  type TaskInput,
  type TaskUpdate,
} from "./schemas";
import * as q from "./sql";

/** `rules.DEFAULT_CLAIM_TTL_MS` and `rules.DEFAULT_RETRY_BASE_MS`. */
export const DEFAULT_CLAIM_TTL_MS = 15 * 60 * 1000;
export const DEFAULT_RETRY_BASE_MS = 30_000;
/** Largest JSON parameter bound in one statement (D1 allows 2 MB per value). */
const MAX_JSON_PARAM = 1_000_000;
/** Attempts of a graph edit that lost its compare-and-set to a concurrent one. */
const CAS_ATTEMPTS = 8;

const OPEN_OR_BLOCKED = new Set(["pending", "ready", "blocked"]);

function rows(result: D1Result<Row> | undefined): TaskRow[] {
  return (result?.results ?? []) as TaskRow[];
}

/** Split a list into JSON arrays of at most `MAX_JSON_PARAM` characters each. */
function jsonChunks(items: readonly unknown[]): string[] {
  const out: string[] = [];
  let current: string[] = [];
  let size = 2;
  for (const item of items) {
    const text = JSON.stringify(item);
    if (current.length > 0 && size + text.length + 1 > MAX_JSON_PARAM) {
      out.push(`[${current.join(",")}]`);
      current = [];
      size = 2;
    }
    current.push(text);
    size += text.length + 1;
  }
  if (current.length > 0) out.push(`[${current.join(",")}]`);
  return out;
}

/** Map D1 constraint failures of a write to the API's refusals. */
function constraintError(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  if (/UNIQUE constraint failed|PRIMARY KEY/.test(message)) throw conflict("a task with that id already exists", "exists");
  if (/FOREIGN KEY constraint failed/.test(message)) {
    throw invalid("dependencies", "a dependency does not exist (it may just have been deleted)");
  }
  if (/CHECK constraint failed/.test(message)) {
    throw invalid("status", "a claimed or in-progress task needs a holder and a claim expiry, and only it has one");
  }
  throw err;
}

/** Find a cycle through `start` in `graph` (node → its dependencies); the path or null. */
export function findCycle(start: string, deps: readonly string[], graph: ReadonlyMap<string, readonly string[]>): string[] | null {
  const stack: [string, string[]][] = deps.map((d) => [d, [start, d]]);
  const seen = new Set<string>();
  while (stack.length > 0) {
    const [node, path] = stack.pop() as [string, string[]];
    if (node === start) return path;
    if (seen.has(node)) continue;
    seen.add(node);
    for (const next of graph.get(node) ?? []) stack.push([next, [...path, next]]);
  }
  return null;
}

export class TaskStore {
  constructor(private readonly db: ScopedDb) {}

  // -- reads ------------------------------------------------------------------

  async get(id: string): Promise<Task | null> {
    const row = await this.db.first<TaskRow>(q.selectTask(id));
    return row === null ? null : rowToTask(row);
  }

  private async existing(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const found = await this.db.all<{ id: string }>(q.existingIds([...ids]));
    return new Set(found.map((r) => r.id));
  }

  async list(filters: Parameters<typeof q.listTasks>[0]): Promise<Task[]> {
    return (await this.db.all<TaskRow>(q.listTasks(filters))).map(rowToTask);
  }

  async ready(limit: number | undefined): Promise<Task[]> {
    const rows = await this.db.all<TaskRow>(q.readyTasks(Date.now(), limit ?? -1));
    return rows.map(rowToTask);
  }

  async stats(): Promise<{
    total: number;
    by_status: Record<string, number>;
    by_priority: Record<string, number>;
    ready: number;
    avg_completion_minutes: number | null;
  }> {
    const [byStatus, byPriority, ready, mean] = await this.db.batch([
      q.countByStatus(),
      q.countByPriority(),
      q.readyCount(Date.now()),
      q.meanCompletion(),
    ]);
    const count = (result: D1Result<Row> | undefined, keys: readonly string[]) => {
      const out: Record<string, number> = Object.fromEntries(keys.map((k) => [k, 0]));
      for (const row of result?.results ?? []) out[String(row.k)] = Number(row.n);
      return out;
    };
    const by_status = count(byStatus, ["pending", "ready", "claimed", "in_progress", "blocked", "completed", "failed"]);
    const meanValue = mean?.results[0]?.m;
    return {
      total: Object.values(by_status).reduce((a, b) => a + b, 0),
      by_status,
      by_priority: count(byPriority, ["low", "medium", "high", "critical"]),
      ready: Number(ready?.results[0]?.n ?? 0),
      avg_completion_minutes: meanValue === null || meanValue === undefined ? null : Number(meanValue),
    };
  }

  // -- create / import --------------------------------------------------------

  /** Create tasks, all or none; later items may depend on earlier ones. */
  async create(inputs: readonly TaskInput[]): Promise<Task[]> {
    const now = Date.now();
    const seen = new Set<string>();
    for (const item of inputs) {
      if (item.id === null) continue;
      if (seen.has(item.id)) throw conflict(`task ${JSON.stringify(item.id)} appears twice in the batch`, "exists");
      seen.add(item.id);
    }
    const taken = await this.existing([...seen]);
    if (taken.size > 0) throw conflict(`task ${JSON.stringify([...taken].sort()[0])} already exists`, "exists");
    const ids = inputs.map((item) => item.id ?? "");
    for (;;) {
      const fresh = ids.flatMap((id, i) => (id === "" ? [i] : []));
      if (fresh.length === 0) break;
      for (const i of fresh) {
        const candidate = newId("bd");
        if (!seen.has(candidate)) {
          ids[i] = candidate;
          seen.add(candidate);
        }
      }
      const clashes = await this.existing(fresh.map((i) => ids[i] ?? ""));
      for (const i of fresh) if (clashes.has(ids[i] ?? "")) ids[i] = "";
    }
    const batchIds = new Set(ids);
    const outside = [...new Set(inputs.flatMap((item) => item.dependencies))].filter((d) => !batchIds.has(d));
    const known = await this.existing(outside);
    const staged = new Set<string>();
    const iso = toIso(now) ?? "";
    const tasks: Task[] = inputs.map((item, i) => {
      const id = ids[i] ?? "";
      for (const dep of item.dependencies) {
        if (dep === id) throw conflict(`task ${JSON.stringify(id)} cannot depend on itself`, "cycle");
        if (!staged.has(dep) && !known.has(dep)) {
          throw invalid("dependencies", `unknown task id ${JSON.stringify(dep)}`);
        }
      }
      staged.add(id);
      return {
        id,
        title: item.title,
        description: item.description,
        status: item.status,
        priority: item.priority,
        dependencies: item.dependencies,
        blockers: item.blockers,
        required_skills: item.required_skills,
        estimated_minutes: item.estimated_minutes,
        actual_minutes: null,
        tags: item.tags,
        retry_count: 0,
        max_retries: item.max_retries,
        branch: item.branch,
        origin_branch: item.origin_branch,
        target_branches: item.target_branches,
        assigned_agent: null,
        last_error: null,
        failure_type: null,
        last_attempt_at: null,
        created_at: iso,
        updated_at: iso,
        completed_at: null,
        metadata: item.metadata,
        not_before: null,
        claim_expires_at: null,
        version: 1,
      };
    });
    const withDeps = tasks.filter((t) => t.dependencies.length > 0).map((t) => t.id);
    const statements: Sql[] = [
      ...jsonChunks(tasks.map(taskToRecord)).map((chunk) => q.insertRows(chunk, false)),
      ...jsonChunks(tasks.flatMap((t) => t.dependencies.map((d) => [t.id, d]))).map(q.insertEdges),
    ];
    if (withDeps.length > 0) {
      statements.push(q.blockBelowFailed(q.idsOf(withDeps), now));
      for (const chunk of jsonChunks(withDeps)) statements.push(q.rowsIn(chunk));
    }
    let results: D1Result<Row>[];
    try {
      results = await this.db.batch(statements);
    } catch (err) {
      constraintError(err);
    }
    if (withDeps.length === 0) return tasks;
    // Tasks created below a failed one came out blocked: answer with them as stored.
    const stored = new Map<string, Task>();
    for (const result of results.slice(statements.length - jsonChunks(withDeps).length)) {
      for (const row of rows(result)) stored.set(String(row.id), rowToTask(row));
    }
    return tasks.map((t) => stored.get(t.id) ?? t);
  }

  /** Write whole tasks as given: all or none; existing ids conflict unless `replace`. */
  async importTasks(tasks: readonly Task[], replace: boolean): Promise<number> {
    const ids = tasks.map((t) => t.id);
    if (new Set(ids).size !== ids.length) throw conflict("the same task id appears twice in the import", "exists");
    for (const task of tasks) {
      const holds = HELD.has(task.status);
      const hasClaim = task.assigned_agent !== null && task.claim_expires_at !== null;
      if (holds && !hasClaim) {
        throw invalid("status", `task ${JSON.stringify(task.id)} is ${task.status} without a holder and a claim expiry`);
      }
      if (!holds && task.claim_expires_at !== null) {
        throw invalid("status", `task ${JSON.stringify(task.id)} is ${task.status} but has a claim expiry`);
      }
    }
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.importOnce(tasks, replace);
      } catch (err) {
        if (!(err instanceof GuardFailed) || attempt + 1 >= CAS_ATTEMPTS) throw err;
      }
    }
  }

  private async importOnce(tasks: readonly Task[], replace: boolean): Promise<number> {
    const batch = new Map(tasks.map((t) => [t.id, t]));
    if (!replace) {
      const taken = await this.existing([...batch.keys()]);
      if (taken.size > 0) throw conflict(`task ${JSON.stringify([...taken].sort()[0])} already exists`, "exists");
    }
    const referenced = [...new Set(tasks.flatMap((t) => t.dependencies))].filter((d) => !batch.has(d));
    const known = await this.existing(referenced);
    for (const task of tasks) {
      for (const dep of task.dependencies) {
        if (dep === task.id) throw conflict(`task ${JSON.stringify(task.id)} cannot depend on itself`, "cycle");
        if (!batch.has(dep) && !known.has(dep)) {
          throw invalid("dependencies", `task ${JSON.stringify(task.id)}: unknown task id ${JSON.stringify(dep)}`);
        }
      }
    }
    const now = Date.now();
    const statements: (Sql | typeof CHANGED)[] = [];
    const graph = new Map<string, string[]>(tasks.map((t) => [t.id, [...t.dependencies]]));
    if (replace) {
      const [, versionRows, edgeRows] = await this.db.batch([q.ensureGraph(), q.graphVersion(), q.allEdges()]);
      const seen = Number(versionRows?.results[0]?.version ?? 0);
      for (const edge of edgeRows?.results ?? []) {
        const child = String(edge.task_id);
        if (!batch.has(child)) graph.set(child, [...(graph.get(child) ?? []), String(edge.depends_on)]);
      }
      statements.push(q.bumpGraph(seen), CHANGED);
    }
    for (const task of tasks) {
      const cycle = findCycle(task.id, task.dependencies, graph);
      if (cycle !== null) throw conflict(`dependency cycle: ${cycle.join(" -> ")}`, "cycle");
    }
    const idChunks = jsonChunks([...batch.keys()]);
    statements.push(...jsonChunks(tasks.map(taskToRecord)).map((chunk) => q.insertRows(chunk, replace)));
    if (replace) statements.push(...idChunks.map(q.deleteEdgesOf));
    statements.push(...jsonChunks(tasks.flatMap((t) => t.dependencies.map((d) => [t.id, d]))).map(q.insertEdges));
    statements.push(q.blockBelowFailed(q.idsOf([...batch.keys()]), now));
    try {
      await this.db.batch(statements);
    } catch (err) {
      if (err instanceof GuardFailed) throw err;
      constraintError(err);
    }
    return tasks.length;
  }

  // -- update / delete --------------------------------------------------------

  async update(id: string, update: TaskUpdate): Promise<Task> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.updateOnce(id, update);
      } catch (err) {
        if (!(err instanceof GuardFailed) || attempt + 1 >= CAS_ATTEMPTS) throw err;
      }
    }
  }

  private async updateOnce(id: string, update: TaskUpdate): Promise<Task> {
    const needsGraph = update.dependencies !== undefined;
    const reads: Sql[] = [q.selectTask(id)];
    if (needsGraph) reads.unshift(q.ensureGraph(), q.graphVersion());
    const readResults = await this.db.batch(reads);
    const taskRow = rows(readResults[readResults.length - 1])[0];
    if (taskRow === undefined) throw notFound("task", id);
    const task = rowToTask(taskRow);
    const now = Date.now();
    const values: Partial<Record<q.Column, unknown>> = {};
    const statements: (Sql | typeof CHANGED)[] = [];
    let deps: string[] | null = null;
    if (update.dependencies !== undefined) {
      deps = [...new Set(update.dependencies)];
      await this.checkDependencies(id, deps);
      values.dependencies = JSON.stringify(deps);
    }
    for (const [key, value] of Object.entries(update)) {
      if (key === "dependencies" || value === undefined) continue;
      if (key === "metadata") values.metadata = JSON.stringify(value ?? {});
      else if (Array.isArray(value) || (value === null && ["required_skills", "tags", "target_branches"].includes(key))) {
        values[key as q.Column] = JSON.stringify(value ?? []);
      } else values[key as q.Column] = value;
    }
    const status = update.status;
    if (status !== undefined && status !== task.status) {
      if (HELD.has(status) && !HELD.has(task.status)) {
        throw invalid("status", `a task becomes ${status} only by a claim (claim_task / claim_next)`);
      }
      if (HELD.has(task.status) && !HELD.has(status)) {
        values.claim_expires_at = null;
        if (OPEN_OR_BLOCKED.has(status)) values.assigned_agent = null;
      }
      if (status === "completed" && task.completed_at === null) values.completed_at = now;
    }
    values.updated_at = now;
    statements.push(q.updateColumns(id, task.version, values), CHANGED);
    if (deps !== null) {
      const seen = Number(readResults[1]?.results[0]?.version ?? 0);
      statements.push(q.deleteEdgesOf(JSON.stringify([id])));
      if (deps.length > 0) statements.push(q.insertEdges(JSON.stringify(deps.map((d) => [id, d]))));
      statements.push(q.bumpGraph(seen), CHANGED);
    }
    statements.push(q.blockBelowFailed(q.idsOf([id]), now));
    if (status === "completed") statements.push(q.promoteDependants(id, now));
    statements.push(q.selectTask(id));
    let results: D1Result<Row>[];
    try {
      results = await this.db.batch(statements);
    } catch (err) {
      if (err instanceof GuardFailed) throw err;
      constraintError(err);
    }
    const after = rows(results[results.length - 1])[0];
    if (after === undefined) throw notFound("task", id);
    return rowToTask(after);
  }

  /** Self-dependency or cycle → 409; unknown id → 422. */
  private async checkDependencies(id: string, deps: readonly string[]): Promise<void> {
    if (deps.includes(id)) throw conflict(`task ${JSON.stringify(id)} cannot depend on itself`, "cycle");
    const known = await this.existing(deps);
    const missing = deps.filter((d) => !known.has(d)).sort();
    if (missing.length > 0) throw invalid("dependencies", `unknown task id ${JSON.stringify(missing[0])}`);
    if (deps.length === 0) return;
    const graph = new Map<string, string[]>();
    for (const edge of await this.db.all<{ task_id: string; depends_on: string }>(q.edgesAbove([...deps]))) {
      if (edge.task_id === id) continue; // the task's own edges are being replaced
      graph.set(edge.task_id, [...(graph.get(edge.task_id) ?? []), edge.depends_on]);
    }
    const cycle = findCycle(id, deps, graph);
    if (cycle !== null) throw conflict(`dependency cycle: ${cycle.join(" -> ")}`, "cycle");
  }

  /** Delete a task nobody depends on; false if it did not exist. */
  async delete(id: string): Promise<boolean> {
    const dependants = await this.db.all<{ task_id: string }>(q.dependantsOf(id));
    if (dependants.length > 0) {
      throw conflict(`task ${JSON.stringify(id)} has dependants: ${dependants.map((d) => d.task_id).join(", ")}`, "has_dependants");
    }
    try {
      const result = await this.db.run(q.deleteTask(id));
      return result.meta.changes > 0;
    } catch (err) {
      if (err instanceof Error && /FOREIGN KEY/.test(err.message)) {
        throw conflict(`task ${JSON.stringify(id)} has dependants`, "has_dependants");
      }
      throw err;
    }
  }

  // -- claims -------------------------------------------------------------------

  /** Run `statement` after the lapsed-claim sweep, in one batch; its result rows. */
  private async afterSweep(now: number, statement: Sql, after: Sql[] = []): Promise<D1Result<Row>[]> {
    return await this.db.batch([
      q.recover(now),
      q.blockBelowFailed(q.recoveredRoots(now), now),
      statement,
      ...after,
    ]);
  }

  async claimOne(id: string, agent: string, ttl: number): Promise<Task | null> {
    const now = Date.now();
    const results = await this.afterSweep(now, q.claimOne(id, agent, now, ttl));
    const row = rows(results[2])[0];
    if (row !== undefined) return rowToTask(row);
    if ((await this.get(id)) === null) throw notFound("task", id);
    return null;
  }

  async claimNext(agent: string, skills: readonly string[] | null, ttl: number): Promise<Task | null> {
    const now = Date.now();
    const wanted = skills === null ? null : JSON.stringify(skills);
    const results = await this.afterSweep(now, q.claimNext(agent, wanted, now, ttl));
    const row = rows(results[2])[0];
    return row === undefined ? null : rowToTask(row);
  }

  /** The holder's move, or why not: 404 for an unknown task, else 409 naming the state. */
  private async held(id: string, agent: string, results: D1Result<Row>[]): Promise<Task> {
    const row = rows(results[2])[0];
    if (row !== undefined) return rowToTask(row);
    const task = await this.get(id);
    if (task === null) throw notFound("task", id);
    const holder = HELD.has(task.status) ? task.assigned_agent : null;
    const lapsed = task.failure_type === "stalled" && task.assigned_agent === null && holder === null;
    throw new ApiError(
      409,
      "not_holder",
      `task ${JSON.stringify(id)} is not held by ${JSON.stringify(agent)} (status ${task.status}, ` +
        `holder ${holder ?? "nobody"}${lapsed ? "; a lapsed claim went back to the queue" : ""})`,
    );
  }

  async renew(id: string, agent: string, ttl: number): Promise<Task> {
    const now = Date.now();
    return await this.held(id, agent, await this.afterSweep(now, q.renew(id, agent, now, ttl)));
  }

  async start(id: string, agent: string): Promise<Task> {
    const now = Date.now();
    return await this.held(id, agent, await this.afterSweep(now, q.start(id, agent, now)));
  }

  async release(id: string, agent: string): Promise<boolean> {
    const now = Date.now();
    const results = await this.afterSweep(now, q.release(id, agent, now));
    return rows(results[2]).length > 0;
  }

  async complete(id: string, agent: string, minutes: number | null, result: Record<string, unknown> | null): Promise<Task> {
    let resultJson: string | null = null;
    if (result !== null && result !== undefined) {
      const current = await this.get(id);
      if (current === null) throw notFound("task", id);
      if (jsonBytes({ ...current.metadata, result }) > MAX_METADATA_BYTES) {
        throw invalid("result", `makes metadata larger than ${MAX_METADATA_BYTES} bytes`);
      }
      resultJson = JSON.stringify(result);
    }
    const now = Date.now();
    const results = await this.afterSweep(now, q.complete(id, agent, now, minutes, resultJson), [
      q.promoteDependants(id, now),
    ]);
    return await this.held(id, agent, results);
  }

  async fail(id: string, agent: string, error: string, kind: string, base: number): Promise<Task> {
    const now = Date.now();
    const results = await this.afterSweep(now, q.fail(id, agent, now, base, error, kind), [
      q.blockBelowFailed(q.idsOf([id]), now),
    ]);
    return await this.held(id, agent, results);
  }

  async recover(): Promise<Task[]> {
    const now = Date.now();
    const [recovered] = await this.db.batch([q.recover(now), q.blockBelowFailed(q.recoveredRoots(now), now)]);
    return rows(recovered).map(rowToTask);
  }
}
