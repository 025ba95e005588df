/**
 * Graph edits (create, import, update) as jetpack-beads' `_edits.py` and
 * `_import.py` make them: ids and dependencies checked, statuses placed by the
 * dependency rules (`rules.ts` through a `settle.ts` Graph), all or nothing.
 * Each is a decision: read, decide, write one guarded batch, and decide again
 * on fresh data if a row it read changed meanwhile (`retrying`).
 */
import { conflict, GuardFailed, invalid, newId, notFound, type Row, type ScopedDb, type Sql, toIso } from "@jetpack/gateway";
import { rowToTask, type TaskRow, taskToRecord, toColumn } from "./rows";
import { findCycle, OPEN, resettle, type Status, statusChange } from "./rules";
import type { Task, TaskInput, TaskUpdate } from "./schemas";
import { Graph, jsonChunks, retrying } from "./settle";
import * as q from "./sql";

/** Map D1 constraint failures of a write to the API's refusals. */
export function constraintError(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  if (/UNIQUE constraint failed|PRIMARY KEY/.test(message)) throw conflict("a task with that id already exists", "exists");
  if (/FOREIGN KEY constraint failed/.test(message)) {
    throw invalid("dependencies", "a dependency does not exist (it may just have been deleted)");
  }
  if (/CHECK constraint failed: (status|claim)/.test(message)) {
    throw invalid("status", "a claimed or in-progress task needs a holder and a claim expiry, and only it has one");
  }
  throw err;
}

/** Run a write batch, mapping constraint failures (a tripped guard passes through). */
async function write(db: ScopedDb, statements: Sql[]): Promise<D1Result<Row>[]> {
  try {
    return await db.batch(statements);
  } catch (err) {
    return constraintError(err);
  }
}

const quote = JSON.stringify;

async function existing(db: ScopedDb, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const results = await db.batch(jsonChunks(ids).map((chunk) => q.existingIds(chunk)));
  return new Set(results.flatMap((r) => r.results.map((row) => String(row.id))));
}

/** Edges as `[task_id, depends_on]` pairs, in JSON chunks. */
const edgesOf = (tasks: readonly Task[]): string[] =>
  jsonChunks(tasks.flatMap((t) => t.dependencies.map((d) => [t.id, d])));

// -- create ---------------------------------------------------------------------

/** Create tasks, all or none; later items may depend on earlier ones (`_import.new_tasks`). */
export async function create(db: ScopedDb, inputs: readonly TaskInput[]): Promise<Task[]> {
  return await retrying(() => createOnce(db, inputs));
}

async function createOnce(db: ScopedDb, inputs: readonly TaskInput[]): Promise<Task[]> {
  const now = Date.now();
  const seen = new Set<string>();
  for (const item of inputs) {
    if (item.id === null) continue;
    if (seen.has(item.id)) throw conflict(`task ${quote(item.id)} appears twice in the batch`, "exists");
    seen.add(item.id);
  }
  const taken = await existing(db, [...seen]);
  if (taken.size > 0) throw conflict(`task ${quote([...taken].sort()[0])} already exists`, "exists");
  // Drawn ids are 64 random bits: instead of a read to check them, a clash with a
  // stored id fails the insert's unique key, and the whole create is decided again.
  const ids = inputs.map((item) => {
    if (item.id !== null) return item.id;
    let candidate = newId("bd");
    while (seen.has(candidate)) candidate = newId("bd");
    seen.add(candidate);
    return candidate;
  });
  const graph = new Graph(db, now);
  const batchIds = new Set(ids);
  await graph.fetchStatuses(inputs.flatMap((item) => item.dependencies).filter((d) => !batchIds.has(d)));
  const staged = new Map<string, Status>();
  const statusOf = (id: string): Status | null => staged.get(id) ?? graph.statusOf(id);
  const iso = toIso(now) ?? "";
  const tasks: Task[] = inputs.map((item, i) => {
    const id = ids[i] ?? "";
    if (item.dependencies.includes(id)) throw conflict(`task ${quote(id)} cannot depend on itself`, "cycle");
    const missing = item.dependencies.filter((d) => !staged.has(d) && graph.statusOf(d) === null).sort();
    if (missing.length > 0) throw invalid("dependencies", `unknown task id ${quote(missing[0])}`);
    const task: Task = {
      ...item,
      id,
      actual_minutes: null,
      retry_count: 0,
      assigned_agent: null,
      last_error: null,
      failure_type: null,
      last_attempt_at: null,
      created_at: iso,
      updated_at: iso,
      completed_at: item.status === "completed" ? iso : null,
      not_before: null,
      claim_expires_at: null,
      version: 1,
    };
    if (OPEN.has(task.status) && task.dependencies.length === 0 && task.blockers.length === 0) {
      task.status = "ready";
    } else {
      [task.status, task.blockers] = resettle(task, statusOf);
    }
    staged.set(id, task.status);
    return task;
  });
  const edges = edgesOf(tasks);
  const statements = [
    ...(edges.length > 0 ? graph.guards() : []),
    ...jsonChunks(tasks.map(taskToRecord)).map((chunk) => q.insertRows(chunk, false)),
    ...edges.map(q.insertEdges),
    ...(edges.length > 0 ? [q.bumpGraph()] : []),
  ];
  try {
    await db.batch(statements);
  } catch (err) {
    const drawn = inputs.some((item) => item.id === null);
    if (drawn && err instanceof Error && /UNIQUE constraint failed: tasks\./.test(err.message)) {
      throw new GuardFailed(); // a drawn id (or an explicit one, just created) is taken: again
    }
    constraintError(err);
  }
  return tasks;
}

// -- import -----------------------------------------------------------------------

/** Write whole tasks as given: all or none; existing ids conflict unless `replace` (`_edits.import_whole`). */
export async function importTasks(db: ScopedDb, tasks: readonly Task[], replace: boolean): Promise<number> {
  const ids = tasks.map((t) => t.id);
  if (new Set(ids).size !== ids.length) throw conflict("the same task id appears twice in the import", "exists");
  for (const task of tasks) {
    const holds = task.status === "claimed" || task.status === "in_progress";
    if (holds && (task.assigned_agent === null || task.claim_expires_at === null)) {
      const lacking = task.assigned_agent === null ? "assigned_agent" : "claim_expires_at";
      throw invalid(
        "status",
        `task ${quote(task.id)} is ${task.status} but has no ${lacking}; ` +
          "import it as pending, or with its holder and claim expiry",
      );
    }
    if (!holds && task.claim_expires_at !== null) {
      throw invalid("status", `task ${quote(task.id)} is ${task.status} but has a claim expiry`);
    }
  }
  return await retrying(() => importOnce(db, tasks, replace));
}

async function importOnce(db: ScopedDb, tasks: readonly Task[], replace: boolean): Promise<number> {
  const batch = new Map(tasks.map((t) => [t.id, t]));
  if (!replace) {
    const taken = await existing(db, [...batch.keys()]);
    if (taken.size > 0) throw conflict(`task ${quote([...taken].sort()[0])} already exists`, "exists");
  }
  const graph = new Graph(db, Date.now());
  await graph.fetchStatuses(tasks.flatMap((t) => t.dependencies).filter((d) => !batch.has(d)));
  for (const task of tasks) {
    for (const dep of task.dependencies) {
      if (dep === task.id) throw conflict(`task ${quote(task.id)} cannot depend on itself`, "cycle");
      if (!batch.has(dep) && graph.statusOf(dep) === null) {
        throw invalid("dependencies", `task ${quote(task.id)}: unknown task id ${quote(dep)}`);
      }
    }
  }
  // The graph after the import: the batch's edges, and the stored edges of every other task.
  const parents = new Map<string, string[]>(tasks.map((t) => [t.id, [...t.dependencies]]));
  if (replace) {
    const [version, edges] = await db.batch([q.graphVersion(), q.allEdges()]);
    graph.readGraph(Number(version?.results[0]?.version ?? 0));
    for (const edge of edges?.results ?? []) {
      const child = String(edge.task_id);
      if (!batch.has(child)) parents.set(child, [...(parents.get(child) ?? []), String(edge.depends_on)]);
    }
  }
  for (const task of tasks) {
    const cycle = findCycle(task.id, task.dependencies, (node) => parents.get(node) ?? []);
    if (cycle !== null) throw conflict(`dependency cycle: ${cycle.join(" -> ")}`, "cycle");
  }
  // Imported statuses are kept, except where the dependency rules place a waiting task;
  // batch tasks keep their version and updated_at, stored dependants below them are bumped.
  const below = new Map<string, string[]>();
  for (const [child, deps] of parents) for (const dep of deps) below.set(dep, [...(below.get(dep) ?? []), child]);
  const outside: string[] = [];
  const reached = new Set(batch.keys());
  let frontier = [...batch.keys()];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (const node of frontier) {
      for (const child of below.get(node) ?? []) {
        if (reached.has(child)) continue;
        reached.add(child);
        outside.push(child);
        next.push(child);
      }
    }
    frontier = next;
  }
  for (const task of tasks) graph.tasks.set(task.id, task);
  await graph.resettleAll([...batch.keys(), ...outside], new Set(outside));
  if (replace) {
    // Edges of stored tasks were replaced: drop the blockers the new edges made stale.
    const edges = [...parents].flatMap(([child, deps]) => deps.map((dep) => [child, dep] as const));
    await graph.rebaseAll([...batch.keys(), ...outside], edges, new Set(outside));
  }
  const written = [...batch.keys()].map((id) => graph.tasks.get(id) as Task);
  const idChunks = jsonChunks([...batch.keys()]);
  const edges = edgesOf(tasks);
  await write(db, [
    ...graph.guards(),
    ...jsonChunks(written.map(taskToRecord)).map((chunk) => q.insertRows(chunk, replace)),
    ...(replace ? idChunks.map(q.deleteEdgesOf) : []),
    ...edges.map(q.insertEdges),
    ...(replace || edges.length > 0 ? [q.bumpGraph()] : []),
    ...graph.writes(new Set(batch.keys())),
  ]);
  return tasks.length;
}

// -- update -----------------------------------------------------------------------

const NULL_MEANS_EMPTY = new Set(["required_skills", "tags", "target_branches"]);

/** Apply the given fields; bumps version and updated_at; dependants follow (`_edits.update`). */
export async function update(db: ScopedDb, id: string, changes: TaskUpdate): Promise<Task> {
  return await retrying(() => updateOnce(db, id, changes));
}

async function updateOnce(db: ScopedDb, id: string, given: TaskUpdate): Promise<Task> {
  const now = Date.now();
  const graph = new Graph(db, now);
  await graph.load([id]);
  const task = graph.tasks.get(id);
  if (task === undefined) throw notFound("task", id);
  const changes: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined) continue;
    if (value === null && NULL_MEANS_EMPTY.has(key)) changes[key] = [];
    else if (value === null && key === "metadata") changes[key] = {};
    else changes[key] = value;
  }
  if (given.dependencies !== undefined) {
    const deps = [...new Set(given.dependencies)];
    changes.dependencies = deps;
    await checkDependencies(graph, id, deps);
  }
  if (given.status !== undefined) {
    const { completed_at, ...rest } = statusChange(task, given.status, now);
    Object.assign(changes, rest);
    if (completed_at !== undefined) changes.completed_at = toIso(completed_at);
  }
  let next = { ...task, ...changes } as Task;
  if (OPEN.has(next.status)) {
    await graph.prefetch([next]);
    [changes.status, changes.blockers] = resettle(next, graph.statusOf);
  }
  changes.updated_at = toIso(now);
  next = { ...task, ...changes, version: task.version + 1 } as Task;
  const values: Partial<Record<q.Column, unknown>> = {};
  for (const key of Object.keys(changes) as q.Column[]) values[key] = toColumn(key, next[key]);
  const statements: Sql[] = [q.updateColumns(id, values)];
  if (given.dependencies !== undefined) {
    statements.push(q.deleteEdgesOf(quote([id])), ...edgesOf([next]).map(q.insertEdges), q.bumpGraph());
  }
  graph.tasks.set(id, next);
  if (given.dependencies !== undefined) await graph.rebase(task, next);
  else await graph.afterStatusChange(task, next);
  const results = await write(db, [
    ...graph.guards(),
    ...statements,
    ...graph.writes(), // the task itself only if the rebase moved it again
    ...graph.tail,
    q.selectTask(id),
  ]);
  const row = results[results.length - 1]?.results[0];
  if (row === undefined) throw notFound("task", id);
  return rowToTask(row as TaskRow);
}

/** Self-dependency or cycle → 409; unknown id → 422 (`_graph.check_dependencies`). */
async function checkDependencies(graph: Graph, id: string, deps: readonly string[]): Promise<void> {
  if (deps.includes(id)) throw conflict(`task ${quote(id)} cannot depend on itself`, "cycle");
  await graph.fetchStatuses(deps);
  const missing = deps.filter((d) => graph.statusOf(d) === null).sort();
  if (missing.length > 0) throw invalid("dependencies", `unknown task id ${quote(missing[0])}`);
  if (deps.length === 0) return;
  const [version, edges] = await graph.db.batch([q.graphVersion(), q.edgesAbove([...deps])]);
  graph.readGraph(Number(version?.results[0]?.version ?? 0));
  const parents = new Map<string, string[]>();
  for (const edge of edges?.results ?? []) {
    const child = String(edge.task_id);
    if (child === id) continue; // the task's own edges are being replaced
    parents.set(child, [...(parents.get(child) ?? []), String(edge.depends_on)]);
  }
  const cycle = findCycle(id, deps, (node) => parents.get(node) ?? []);
  if (cycle !== null) throw conflict(`dependency cycle: ${cycle.join(" -> ")}`, "cycle");
}
