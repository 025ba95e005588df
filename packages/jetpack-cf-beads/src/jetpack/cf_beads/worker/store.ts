/**
 * The task store on D1, for one project (through the gateway's `ScopedDb`).
 * Same semantics as `jetpack.shared.testing.InMemoryTaskStore` and
 * jetpack-beads: the conformance kit checks all three.
 *
 * Claims are one `UPDATE … RETURNING` each, checked by the rows it returned,
 * in one D1 batch after the lapsed-claim sweep, so a lapsed claim is requeued
 * (as `stalled`, one retry used) before anyone acts on it, and that requeue is
 * kept even when the action is refused. What a claim-path change means for
 * dependants runs in the same batch (blocking below a failed task, promoting
 * dependants of a completed one); the rare task that goes back to the queue
 * below a failed or blocked task is then placed by `rules.resettle`. Graph
 * edits are decisions under version guards (`edits.ts`, `settle.ts`).
 */
import {
  ApiError,
  conflict,
  invalid,
  jsonBytes,
  MAX_METADATA_BYTES,
  notFound,
  type Row,
  type ScopedDb,
  type Sql,
} from "@jetpack/gateway";
import * as edits from "./edits";
import { rowToTask, type TaskRow } from "./rows";
import { HELD, type Task, type TaskInput, type TaskUpdate } from "./schemas";
import { Graph, retrying } from "./settle";
import * as q from "./sql";

/** `rules.DEFAULT_CLAIM_TTL_MS` and `rules.DEFAULT_RETRY_BASE_MS`. */
export const DEFAULT_CLAIM_TTL_MS = 15 * 60 * 1000;
export const DEFAULT_RETRY_BASE_MS = 30_000;

function rows(result: D1Result<Row> | undefined): TaskRow[] {
  return (result?.results ?? []) as TaskRow[];
}

export class TaskStore {
  constructor(private readonly db: ScopedDb) {}

  // -- reads ------------------------------------------------------------------

  async get(id: string): Promise<Task | null> {
    const row = await this.db.first<TaskRow>(q.selectTask(id));
    return row === null ? null : rowToTask(row);
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

  // -- create / import / update (edits.ts) -------------------------------------

  async create(inputs: readonly TaskInput[]): Promise<Task[]> {
    return await edits.create(this.db, inputs);
  }

  async importTasks(tasks: readonly Task[], replace: boolean): Promise<number> {
    return await edits.importTasks(this.db, tasks, replace);
  }

  async update(id: string, update: TaskUpdate): Promise<Task> {
    return await edits.update(this.db, id, update);
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
    const results = await this.db.batch([
      q.recover(now),
      q.blockBelow(q.recoveredRoots(now), now),
      statement,
      ...after,
    ]);
    await this.settle(rows(results[0]));
    return results;
  }

  /**
   * Rows a statement put back in the queue, placed by the whole `rules.resettle`
   * where it flagged them (`needs_settle`: a dependency failed or blocked, or a
   * blocker naming a task); each as stored after that.
   */
  private async settle(returned: TaskRow[]): Promise<Task[]> {
    const out: Task[] = [];
    for (const row of returned) {
      const task = rowToTask(row);
      out.push(Number(row.needs_settle ?? 0) === 0 ? task : ((await this.resettleOne(task.id)) ?? task));
    }
    return out;
  }

  private async resettleOne(id: string): Promise<Task | null> {
    return await retrying(async () => {
      const graph = new Graph(this.db, Date.now());
      await graph.load([id]);
      const task = graph.tasks.get(id);
      if (task === undefined) return null;
      if ((await graph.resettleOne(task)) === task) return task;
      const results = await this.db.batch([...graph.guards(), ...graph.writes(), ...graph.tail, q.selectTask(id)]);
      const row = rows(results[results.length - 1])[0];
      return row === undefined ? null : rowToTask(row);
    });
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
  private async held(id: string, agent: string, results: D1Result<Row>[]): Promise<TaskRow> {
    const row = rows(results[2])[0];
    if (row !== undefined) return row;
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
    return rowToTask(await this.held(id, agent, await this.afterSweep(now, q.renew(id, agent, now, ttl))));
  }

  async start(id: string, agent: string): Promise<Task> {
    const now = Date.now();
    return rowToTask(await this.held(id, agent, await this.afterSweep(now, q.start(id, agent, now))));
  }

  async release(id: string, agent: string): Promise<boolean> {
    const now = Date.now();
    const released = rows((await this.afterSweep(now, q.release(id, agent, now)))[2]);
    await this.settle(released.filter((row) => Number(row.needs_settle) !== 0));
    return released.length > 0;
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
    return rowToTask(await this.held(id, agent, results));
  }

  async fail(id: string, agent: string, error: string, kind: string, base: number): Promise<Task> {
    const now = Date.now();
    const results = await this.afterSweep(now, q.fail(id, agent, now, base, error, kind), [
      q.blockBelow(q.failedRoot(id, now), now),
    ]);
    const [task] = await this.settle([await this.held(id, agent, results)]);
    return task as Task;
  }

  async recover(): Promise<Task[]> {
    const now = Date.now();
    const [recovered] = await this.db.batch([q.recover(now), q.blockBelow(q.recoveredRoots(now), now)]);
    return await this.settle(rows(recovered));
  }
}
