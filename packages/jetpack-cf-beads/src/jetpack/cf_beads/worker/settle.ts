/**
 * The dependency rules of `rules.ts` applied to D1, as jetpack-beads' `_settle.py`
 * applies them to SQLite: a dependant of a failed or blocked task is blocked,
 * naming it; a waiting task is stored `ready` or `pending` by readiness; a
 * reopened task puts what it blocked back in the queue.
 *
 * A decision reads what it needs (a {@link Graph}), runs the pure rules, and
 * writes its answer in one D1 batch that starts with a guard: every row it
 * read must still have the version it read (and the project's graph version,
 * if it read edges), else the batch is rolled back and the decision is taken
 * again on fresh data ({@link retrying}). Claims never wait on this: they are
 * single statements and only bump the versions a decision checks.
 */
import { GuardFailed, type ScopedDb, type Sql, toIso, toMs } from "@jetpack/gateway";
import { rowToTask, type TaskRow } from "./rows";
import {
  BLOCKING,
  blockerNames,
  dependantsClosure,
  labelOf,
  planBlock,
  planRebase,
  resettle,
  sameList,
  type Status,
  topologicalOrder,
} from "./rules";
import type { Task } from "./schemas";
import * as q from "./sql";

/** Largest JSON parameter bound in one statement (D1 allows 2 MB per value). */
const MAX_JSON_PARAM = 1_000_000;
/** Attempts of a decision whose reads went stale before it could write. */
const ATTEMPTS = 12;

/** Split a list into JSON arrays of at most `MAX_JSON_PARAM` characters each. */
export function jsonChunks(items: readonly unknown[]): string[] {
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

/** Run `decide` again (up to a bound) while its batch fails its guard. */
export async function retrying<T>(decide: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await decide();
    } catch (err) {
      if (!(err instanceof GuardFailed) || attempt >= ATTEMPTS) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 2 * attempt));
    }
  }
}

/** Tasks and statuses read for one decision, the changes it makes, and the batch that writes them. */
export class Graph {
  /** Whole tasks, as changed so far by this decision. */
  readonly tasks = new Map<string, Task>();
  /** Statements to run after the row changes (blocking below a task, promotions). */
  readonly tail: Sql[] = [];
  private readonly statuses = new Map<string, Status | null>();
  private readonly seen = new Map<string, number>();
  private graphSeen: number | null = null;
  private readonly changed = new Map<string, Task>();

  constructor(
    readonly db: ScopedDb,
    readonly now: number,
  ) {}

  /** Fetch whole tasks not loaded yet (their versions are checked at write time). */
  async load(ids: Iterable<string>): Promise<void> {
    const wanted = [...new Set(ids)].filter((id) => !this.tasks.has(id));
    if (wanted.length === 0) return;
    const results = await this.db.batch(jsonChunks(wanted).map(q.rowsIn));
    for (const result of results) {
      for (const row of result.results as TaskRow[]) {
        const task = rowToTask(row);
        this.tasks.set(task.id, task);
        this.seen.set(task.id, task.version);
      }
    }
    for (const id of wanted) if (!this.tasks.has(id)) this.seen.set(id, -1);
  }

  /** Read the statuses of `ids` (null: no such task); checked at write time like rows. */
  async fetchStatuses(ids: Iterable<string>): Promise<void> {
    const wanted = [...new Set(ids)].filter((id) => !this.tasks.has(id) && !this.statuses.has(id));
    if (wanted.length === 0) return;
    const results = await this.db.batch(jsonChunks(wanted).map(q.statusesIn));
    for (const result of results) {
      for (const row of result.results) {
        this.statuses.set(String(row.id), row.status as Status);
        this.seen.set(String(row.id), Number(row.version));
      }
    }
    for (const id of wanted) {
      if (!this.statuses.has(id)) {
        this.statuses.set(id, null);
        this.seen.set(id, -1);
      }
    }
  }

  /** Read the statuses of everything `tasks` refer to: dependencies and the tasks blockers name. */
  async prefetch(tasks: Iterable<Task>): Promise<void> {
    const wanted: string[] = [];
    for (const task of tasks) {
      wanted.push(...task.dependencies);
      for (const blocker of task.blockers) {
        const named = blockerNames(blocker);
        if (named !== null) wanted.push(named);
      }
    }
    await this.fetchStatuses(wanted);
  }

  /** A task's status as this decision sees it (null: unknown, or not read). */
  readonly statusOf = (id: string): Status | null => this.tasks.get(id)?.status ?? this.statuses.get(id) ?? null;

  /** This decision read the project's edges at graph version `version` (read twice, at two versions: decide again). */
  readGraph(version: number): void {
    if (this.graphSeen !== null && this.graphSeen !== version) throw new GuardFailed();
    this.graphSeen = version;
  }

  /** Every task below `id` (`rules.dependants_closure`), from the edges as stored now. */
  async closure(id: string): Promise<string[]> {
    const [version, edges] = await this.db.batch([q.graphVersion(), q.edgesBelow(id)]);
    this.readGraph(Number(version?.results[0]?.version ?? 0));
    const below = new Map<string, string[]>();
    for (const edge of edges?.results ?? []) {
      const parent = String(edge.depends_on);
      below.set(parent, [...(below.get(parent) ?? []), String(edge.task_id)]);
    }
    return dependantsClosure(id, (node) => below.get(node) ?? []);
  }

  /** Change a task's status and blockers (`bump`: version and updated_at too). */
  put(task: Task, status: Status, blockers: string[], bump = true): Task {
    const next: Task = { ...task, status, blockers };
    if (bump) {
      next.updated_at = toIso(this.now) ?? task.updated_at;
      next.version = task.version + 1;
    }
    this.tasks.set(task.id, next);
    this.changed.set(task.id, next);
    return next;
  }

  /** `_settle.resettle_tasks`: place `ids` in topological order (`bumpIds`: which get a new version). */
  async resettleAll(ids: readonly string[], bumpIds?: ReadonlySet<string>): Promise<void> {
    await this.load(ids);
    const present = ids.filter((id) => this.tasks.has(id));
    await this.prefetch(present.map((id) => this.tasks.get(id) as Task));
    const order = topologicalOrder(present, (node) => this.tasks.get(node)?.dependencies ?? []);
    for (const id of order) {
      const task = this.tasks.get(id) as Task;
      const [status, blockers] = resettle(task, this.statusOf);
      if (status !== task.status || !sameList(blockers, task.blockers)) {
        this.put(task, status, blockers, bumpIds === undefined || bumpIds.has(id));
      }
    }
  }

  /** `_settle.resettle_one`: place one waiting task, then what that means for its dependants. */
  async resettleOne(task: Task): Promise<Task> {
    this.tasks.set(task.id, task);
    await this.prefetch([task]);
    const [status, blockers] = resettle(task, this.statusOf);
    if (status === task.status && sameList(blockers, task.blockers)) return task;
    const next = this.put(task, status, blockers);
    await this.afterStatusChange(task, next);
    return next;
  }

  /** `_settle.after_status_change`: block below, resettle below, or promote dependants (`closure`: below `next`, loaded). */
  async afterStatusChange(old: Task, next: Task, closure?: readonly string[]): Promise<void> {
    if (next.status === old.status) return;
    if (BLOCKING.has(next.status)) {
      // With the closure at hand (loaded), decided here, so what follows in the decision reads it.
      if (closure !== undefined) this.blockClosure(next, closure);
      else this.tail.push(q.blockBelow(q.root(next.id, labelOf(next)), this.now));
    } else if (BLOCKING.has(old.status) || old.status === "completed") {
      await this.resettleAll(closure ?? (await this.closure(next.id)));
    } else if (next.status === "completed") {
      this.tail.push(q.promoteDependants(next.id, this.now));
    }
  }

  /** `_settle.block_closure` in the decision (not by SQL after the batch): block `closure` (loaded) below `task`. */
  blockClosure(task: Task, closure: readonly string[]): void {
    const below = new Map<string, string[]>();
    for (const child of closure) {
      for (const dep of this.tasks.get(child)?.dependencies ?? []) below.set(dep, [...(below.get(dep) ?? []), child]);
    }
    const plan = planBlock(task.id, labelOf(task), (node) => below.get(node) ?? [], (node) => this.tasks.get(node));
    for (const [id, blockers] of plan) this.put(this.tasks.get(id) as Task, "blocked", blockers);
  }

  /**
   * `_settle.rebase` after an edit of `old`'s dependencies (`next`, its new edges
   * not stored yet): what its status change means below it (on the closure read
   * once), then `rules.planRebase` over it and its dependants closure.
   */
  async rebase(old: Task, next: Task): Promise<void> {
    const closure = await this.closure(next.id);
    await this.load(closure);
    await this.afterStatusChange(old, next, closure);
    const ids = [next.id, ...closure];
    // Stored edges: the task's old ones are left out, its new dependencies walked up from.
    const [version, above] = await this.db.batch([q.graphVersion(), q.edgesAbove([...ids, ...next.dependencies])]);
    this.readGraph(Number(version?.results[0]?.version ?? 0));
    const edges: [string, string][] = next.dependencies.map((dep) => [next.id, dep]);
    for (const edge of above?.results ?? []) {
      if (edge.task_id !== next.id) edges.push([String(edge.task_id), String(edge.depends_on)]);
    }
    await this.rebaseAll(ids, edges);
  }

  /** `rules.planRebase` applied to `ids` (loaded) under `edges` (`bumpIds`: which get a new version). */
  async rebaseAll(
    ids: readonly string[],
    edges: Iterable<readonly [string, string]>,
    bumpIds?: ReadonlySet<string>,
  ): Promise<void> {
    await this.prefetch(ids.flatMap((id) => this.tasks.get(id) ?? []));
    for (const [id, status, blockers] of planRebase(ids, edges, (node) => this.tasks.get(node), this.statusOf)) {
      this.put(this.tasks.get(id) as Task, status, blockers, bumpIds === undefined || bumpIds.has(id));
    }
  }

  /** The guard that what this decision read is unchanged: first in its batch. */
  guards(): Sql[] {
    if (this.seen.size === 0 && this.graphSeen === null) return [];
    const chunks = jsonChunks([...this.seen]);
    if (chunks.length === 0) chunks.push("[]");
    return chunks.map((chunk, i) => q.unchanged(chunk, i === 0 ? this.graphSeen : null));
  }

  /** The status and blocker changes of stored rows (`skip`: rows written otherwise). */
  writes(skip: ReadonlySet<string> = new Set()): Sql[] {
    const records = [...this.changed.values()]
      .filter((task) => !skip.has(task.id))
      .map((task) => ({
        id: task.id,
        status: task.status,
        blockers: task.blockers,
        updated_at: toMs(task.updated_at),
        version: task.version,
      }));
    return jsonChunks(records).map(q.settleRows);
  }
}
