/**
 * The task rules of `jetpack.shared.rules` (`_tasks.py`), ported function by
 * function for the Worker: the ready placement (`resettle`), the dependency
 * blockers (`blockerFor`, `blockerNames`), graph walks (`findCycle`,
 * `dependantsClosure`, `topologicalOrder`) and status changes outside claims
 * (`statusChange`). Pure: no D1 here. The conformance kit and the model-based
 * test (the same random work on this Worker and on the kit's reference store)
 * judge this port and the Python rules alike; change both together.
 *
 * The claim-path statements of `sql.ts` keep the same rules in SQL where they
 * must run inside one statement (the ready rule, back-off, blocking below a
 * failed task, promotion of dependants).
 */
import { invalid } from "@jetpack/gateway";
import { HELD, type Task } from "./schemas";

export type Status = Task["status"];

export const FINAL: ReadonlySet<string> = new Set(["completed", "failed"]);
export const OPEN: ReadonlySet<string> = new Set(["pending", "ready"]);
/** Statuses that block a task's dependants. */
export const BLOCKING: ReadonlySet<string> = new Set(["failed", "blocked"]);

/** `rules.blocker_for`: the blocker a dependant carries while `id` is failed or blocked. */
export function blockerFor(id: string, status: Status | null): string | null {
  if (status === "failed") return `dependency ${id} failed`;
  if (status === "blocked") return `dependency ${id} blocked`;
  return null;
}

/** `rules.blocker_names`: the task id a dependency blocker names, or null. */
export function blockerNames(blocker: string): string | null {
  const parts = blocker.split(" ");
  if (parts.length === 3 && parts[0] === "dependency" && (parts[2] === "failed" || parts[2] === "blocked")) {
    return parts[1] ?? null;
  }
  return null;
}

/** Whether a blocker names a task (a non-empty id, as Python's truth test reads it). */
export const namesTask = (blocker: string): boolean => Boolean(blockerNames(blocker));

/**
 * `rules.resettle`: where a waiting task belongs now, and its blockers; held
 * and final tasks stay. `statusOf(id)` gives a task's current status (null if
 * unknown).
 */
export function resettle(task: Task, statusOf: (id: string) => Status | null): [Status, string[]] {
  if (HELD.has(task.status) || FINAL.has(task.status)) return [task.status, [...task.blockers]];
  const kept: string[] = [];
  let dropped = false;
  for (const blocker of task.blockers) {
    const named = blockerNames(blocker);
    if (named !== null && !BLOCKING.has(statusOf(named) ?? "")) dropped = true;
    else kept.push(blocker);
  }
  const statuses = new Map<string, Status | null>();
  for (const dep of task.dependencies) statuses.set(dep, statusOf(dep));
  if (!kept.some(namesTask)) {
    for (const [dep, status] of statuses) {
      const label = blockerFor(dep, status);
      if (label !== null && !kept.includes(label)) kept.push(label);
    }
  }
  if (kept.some(namesTask)) return ["blocked", kept];
  if (task.status === "blocked" && !dropped) return ["blocked", kept];
  if (kept.length > 0 || [...statuses.values()].some((s) => s !== "completed")) return ["pending", kept];
  return ["ready", kept];
}

/** The label a failed or blocked task gives its dependants: the root cause it names, else itself. */
export function labelOf(task: Task): string {
  return task.blockers.find(namesTask) ?? blockerFor(task.id, task.status) ?? `dependency ${task.id} blocked`;
}

/** `rules.find_cycle`: a cycle (as a path of ids) if `id` depending on `deps` makes one. */
export function findCycle(
  id: string,
  deps: readonly string[],
  dependenciesOf: (node: string) => readonly string[],
): string[] | null {
  const stack: [string, string[]][] = deps.map((d) => [d, [id, d]]);
  const seen = new Set<string>();
  while (stack.length > 0) {
    const [node, path] = stack.pop() as [string, string[]];
    if (node === id) return path;
    if (seen.has(node)) continue;
    seen.add(node);
    for (const next of dependenciesOf(node)) stack.push([next, [...path, next]]);
  }
  return null;
}

/** `rules.dependants_closure`: every task depending on `id`, directly or not (breadth first). */
export function dependantsClosure(id: string, dependantsOf: (node: string) => readonly string[]): string[] {
  const order: string[] = [];
  const seen = new Set([id]);
  let frontier = [id];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (const node of frontier) {
      for (const dep of dependantsOf(node)) {
        if (seen.has(dep)) continue;
        seen.add(dep);
        order.push(dep);
        next.push(dep);
      }
    }
    frontier = next;
  }
  return order;
}

/**
 * `rules.plan_block`: block the dependants closure of `id` with `label`, as
 * `[id, blockers]` per task to change. Final and held tasks are left alone; a
 * task already blocked by a dependency keeps its blockers.
 */
export function planBlock(
  id: string,
  label: string,
  dependantsOf: (node: string) => readonly string[],
  get: (node: string) => Task | undefined,
): [string, string[]][] {
  const out: [string, string[]][] = [];
  for (const node of dependantsClosure(id, dependantsOf)) {
    const task = get(node);
    if (task === undefined || FINAL.has(task.status) || HELD.has(task.status)) continue;
    if (task.status === "blocked" && task.blockers.some(namesTask)) continue;
    out.push([node, task.blockers.includes(label) ? [...task.blockers] : [...task.blockers, label]]);
  }
  return out;
}

/**
 * `rules.plan_rebase`: after an edit of dependencies, `[id, status, blockers]`
 * per task to change. `ids` are the edited tasks and their dependants closure,
 * `edges` every `[task_id, depends_on]` edge at or above them (the edit
 * included). A dependency blocker naming a task no longer above its task
 * is dropped and the task placed again by `resettle` (held and final tasks keep
 * their status), as is every task that depends on or names one that changed.
 */
export function planRebase(
  ids: readonly string[],
  edges: Iterable<readonly [string, string]>,
  get: (id: string) => Task | undefined,
  statusOf: (id: string) => Status | null,
): [string, Status, string[]][] {
  const below = new Map<string, string[]>();
  const parents = new Map<string, string[]>();
  for (const [child, parent] of edges) {
    below.set(parent, [...(below.get(parent) ?? []), child]);
    parents.set(child, [...(parents.get(child) ?? []), parent]);
  }
  const reach = new Map<string, Set<string>>();
  const isAbove = (name: string, id: string): boolean => {
    let found = reach.get(name);
    if (found === undefined) {
      found = new Set(dependantsClosure(name, (node) => below.get(node) ?? []));
      reach.set(name, found);
    }
    return found.has(id);
  };
  const changed = new Map<string, Status>();
  const out: [string, Status, string[]][] = [];
  for (const id of topologicalOrder(ids, (node) => parents.get(node) ?? [])) {
    const task = get(id);
    if (task === undefined) continue;
    const named = task.blockers.map((b) => [b, blockerNames(b)] as const);
    const stale = named.filter(([, n]) => n !== null && !isAbove(n, id)).map(([b]) => b);
    const names = named.flatMap(([, n]) => (n === null ? [] : [n]));
    if (stale.length === 0 && ![...task.dependencies, ...names].some((n) => changed.has(n))) continue;
    let status: Status;
    let blockers: string[];
    if (HELD.has(task.status) || FINAL.has(task.status)) {
      [status, blockers] = [task.status, task.blockers.filter((b) => !stale.includes(b))];
    } else {
      [status, blockers] = resettle(task, (name) => {
        if (!isAbove(name, id)) return null;
        return changed.has(name) ? (changed.get(name) as Status) : statusOf(name);
      });
    }
    if (status !== task.status || !sameList(blockers, task.blockers)) {
      changed.set(id, status);
      out.push([id, status, blockers]);
    }
  }
  return out;
}

/** Whether two lists hold the same items in the same order. */
export const sameList = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** `rules.topological_order`: each id after those of its dependencies among `ids`; ties keep order. */
export function topologicalOrder(ids: Iterable<string>, dependenciesOf: (node: string) => readonly string[]): string[] {
  const order = [...new Set(ids)];
  const members = new Set(order);
  const waiting = new Map(order.map((node) => [node, 0]));
  const below = new Map<string, string[]>(order.map((node) => [node, []]));
  for (const node of order) {
    for (const dep of new Set(dependenciesOf(node))) {
      if (!members.has(dep)) continue;
      waiting.set(node, (waiting.get(node) ?? 0) + 1);
      below.get(dep)?.push(node);
    }
  }
  const ready = order.filter((node) => waiting.get(node) === 0);
  const out: string[] = [];
  for (let i = 0; i < ready.length; i++) {
    const node = ready[i] as string;
    out.push(node);
    for (const child of below.get(node) ?? []) {
      const left = (waiting.get(child) ?? 0) - 1;
      waiting.set(child, left);
      if (left === 0) ready.push(child);
    }
  }
  out.push(...order.filter((node) => (waiting.get(node) ?? 0) > 0)); // only if given a cycle
  return out;
}

const HELD_BY_CLAIM =
  "claimed and in_progress are set by claim_task, claim_next and start_task, which record the holder and its expiry";

/** The claim fields `statusChange` may set (times as epoch ms). */
export interface ClaimChanges {
  claim_expires_at?: null;
  assigned_agent?: null;
  completed_at?: number | null;
}

/**
 * `rules.status_change`: what `update_task(id, {status})` also sets, or a 422
 * naming `status`. Held statuses come only from claims; leaving one ends the
 * claim (a completed task keeps the agent that did it); completing sets
 * `completed_at`, reopening clears it.
 */
export function statusChange(task: Task, status: Status, now: number): ClaimChanges {
  if (HELD.has(status) && status !== task.status) throw invalid("status", HELD_BY_CLAIM);
  const changes: ClaimChanges = {};
  if (HELD.has(task.status) && !HELD.has(status)) {
    changes.claim_expires_at = null;
    if (status !== "completed") changes.assigned_agent = null;
  }
  if (status === "completed" && task.completed_at === null) changes.completed_at = now;
  else if (status !== "completed" && task.completed_at !== null) changes.completed_at = null;
  return changes;
}
