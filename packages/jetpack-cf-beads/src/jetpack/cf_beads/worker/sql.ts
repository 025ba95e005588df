/**
 * The task store's SQL, as fragments for the gateway's door (`sql`, `PROJECT`).
 * Every statement is scoped by project; decisions that must not race (who wins
 * a claim, whether a claim lapsed, which dependants a failure blocks) are made
 * inside the statements themselves, never by reading first and writing after.
 * Times are epoch milliseconds of the Worker's clock; JSON arrays are TEXT.
 */
import { guard, PROJECT, type Raw, raw, type Sql, sql } from "@jetpack/gateway";

/** Every stored column (but the project), in the order the rows module reads them. */
export const COLUMNS = [
  "id",
  "title",
  "description",
  "status",
  "priority",
  "dependencies",
  "blockers",
  "required_skills",
  "estimated_minutes",
  "actual_minutes",
  "tags",
  "retry_count",
  "max_retries",
  "branch",
  "origin_branch",
  "target_branches",
  "assigned_agent",
  "last_error",
  "failure_type",
  "last_attempt_at",
  "created_at",
  "updated_at",
  "completed_at",
  "metadata",
  "not_before",
  "claim_expires_at",
  "version",
] as const;
export type Column = (typeof COLUMNS)[number];

export const COLS = raw(COLUMNS.join(", "));
const T_COLS = raw(COLUMNS.map((c) => `t.${c}`).join(", "));

/** `jetpack.shared.rules.is_ready` in SQL (an unknown dependency counts as not completed). */
export const ready = (now: number): Sql => sql`
  t.project = ${PROJECT}
  AND t.status IN ('pending', 'ready')
  AND t.blockers = '[]'
  AND (t.not_before IS NULL OR t.not_before <= ${now})
  AND NOT EXISTS (
    SELECT 1 FROM task_deps AS d LEFT JOIN tasks AS p ON p.project = d.project AND p.id = d.depends_on
    WHERE d.project = ${PROJECT} AND d.task_id = t.id AND (p.status IS NULL OR p.status <> 'completed'))`;

/** `rules.has_skills`: every required skill among `skills` (a JSON array); null: any. */
const hasSkills = (skills: string | null): Sql =>
  skills === null
    ? sql``
    : sql`AND NOT EXISTS (SELECT 1 FROM json_each(t.required_skills) AS r
            WHERE r.value NOT IN (SELECT value FROM json_each(${skills})))`;

/** `rules.claim_order_key`: priority (critical first), then age, then id. */
const CLAIM_ORDER = raw("ORDER BY t.priority_rank, t.created_at, t.id");

export const selectTask = (id: string): Sql =>
  sql`SELECT ${COLS} FROM tasks WHERE project = ${PROJECT} AND id = ${id}`;

export const existingIds = (idsJson: string): Sql =>
  sql`SELECT id FROM tasks WHERE project = ${PROJECT} AND id IN (SELECT value FROM json_each(${idsJson}))`;

export const readyTasks = (now: number, limit: number): Sql =>
  sql`SELECT ${T_COLS} FROM tasks AS t WHERE ${ready(now)} ${CLAIM_ORDER} LIMIT ${limit}`;

export const readyCount = (now: number): Sql => sql`SELECT count(*) AS n FROM tasks AS t WHERE ${ready(now)}`;

const claimSet = (agent: string, now: number, ttl: number): Sql => sql`
  UPDATE tasks SET status = 'claimed', assigned_agent = ${agent}, claim_expires_at = ${now + ttl},
    last_attempt_at = ${now}, updated_at = ${now}, version = version + 1`;

/** Claim the best ready task the agent can do: one statement, one winner. */
export const claimNext = (agent: string, skills: string | null, now: number, ttl: number): Sql => sql`
  ${claimSet(agent, now, ttl)}
  WHERE project = ${PROJECT} AND id = (
    SELECT t.id FROM tasks AS t INDEXED BY tasks_claim_order
    WHERE ${ready(now)} ${hasSkills(skills)} ${CLAIM_ORDER} LIMIT 1)
  RETURNING ${COLS}`;

/** Claim one named task if it is ready. */
export const claimOne = (id: string, agent: string, now: number, ttl: number): Sql => sql`
  ${claimSet(agent, now, ttl)}
  WHERE project = ${PROJECT} AND id = (SELECT t.id FROM tasks AS t WHERE t.id = ${id} AND ${ready(now)})
  RETURNING ${COLS}`;

/** The caller holds the task and its claim has not lapsed. */
const held = (id: string, agent: string, now: number): Sql => sql`
  project = ${PROJECT} AND id = ${id} AND status IN ('claimed', 'in_progress')
  AND assigned_agent = ${agent} AND claim_expires_at > ${now}`;

/**
 * `rules.blocker_names(x)` is truthy: `x` is `dependency <id> failed` or
 * `dependency <id> blocked` with a non-empty id (three words). `loose` also
 * accepts the empty id (`rules.blocker_names(x) is not None`).
 */
const namesTask = (x: string, loose = false): Raw =>
  raw(`(substr(${x}, 1, 11) = 'dependency ' AND length(${x}) - length(replace(${x}, ' ', '')) = 2
    AND (${x} GLOB '* failed' OR ${x} GLOB '* blocked')${loose ? "" : ` AND substr(${x}, 12, 1) <> ' '`})`);

/** The id a dependency blocker `x` names (see `namesTask`). */
const namedId = (x: string): Raw => raw(`substr(${x}, 12, instr(substr(${x}, 12), ' ') - 1)`);

/**
 * Where a task going back to the queue (a release, a retry, a lapsed claim)
 * belongs, as far as one statement can tell (`rules.resettle` when no
 * dependency is failed or blocked and no blocker names a task): `ready` with
 * no blockers and every dependency completed (an unknown one is not), else
 * `pending`. `needsSettle` flags the rows that need the whole rule.
 */
const settled = raw(`CASE WHEN blockers <> '[]' OR EXISTS (
      SELECT 1 FROM task_deps AS d LEFT JOIN tasks AS p ON p.project = d.project AND p.id = d.depends_on
      WHERE d.project = tasks.project AND d.task_id = tasks.id AND (p.status IS NULL OR p.status <> 'completed'))
    THEN 'pending' ELSE 'ready' END`);

/** Returned with the rows a statement put back in the queue: true where `resettle` must finish the job. */
const needsSettle = raw(`status IN ('pending', 'ready') AND (
    EXISTS (SELECT 1 FROM json_each(tasks.blockers) AS b WHERE ${namesTask("b.value", true).text})
    OR EXISTS (SELECT 1 FROM task_deps AS d JOIN tasks AS p ON p.project = d.project AND p.id = d.depends_on
      WHERE d.project = tasks.project AND d.task_id = tasks.id AND p.status IN ('failed', 'blocked'))) AS needs_settle`);

export const renew = (id: string, agent: string, now: number, ttl: number): Sql => sql`
  UPDATE tasks SET claim_expires_at = ${now + ttl}, updated_at = ${now}, version = version + 1
  WHERE ${held(id, agent, now)} RETURNING ${COLS}`;

export const start = (id: string, agent: string, now: number): Sql => sql`
  UPDATE tasks SET status = 'in_progress', updated_at = ${now}, version = version + 1
  WHERE ${held(id, agent, now)} RETURNING ${COLS}`;

export const release = (id: string, agent: string, now: number): Sql => sql`
  UPDATE tasks SET status = ${settled}, assigned_agent = NULL, claim_expires_at = NULL,
    updated_at = ${now}, version = version + 1
  WHERE ${held(id, agent, now)} RETURNING id, ${needsSettle}`;

export const complete = (
  id: string,
  agent: string,
  now: number,
  minutes: number | null,
  result: string | null,
): Sql => sql`
  UPDATE tasks SET status = 'completed', completed_at = ${now},
    actual_minutes = coalesce(${minutes}, CAST((${now} - last_attempt_at) / 60000 AS INTEGER)),
    claim_expires_at = NULL,
    metadata = CASE WHEN ${result} IS NULL THEN metadata ELSE json_set(metadata, '$.result', json(${result})) END,
    updated_at = ${now}, version = version + 1
  WHERE ${held(id, agent, now)} RETURNING ${COLS}`;

/** Six hours: the longest back-off (`rules.MAX_RETRY_DELAY_MS`). */
const MAX_RETRY_DELAY_MS = 6 * 60 * 60 * 1000;

/**
 * `rules.next_after_failure` applied to the rows matching `where`: retry after
 * `base × 2^retries` (capped) while retries remain, placed by `settled`; else
 * `failed`. SQLite evaluates every SET expression on the old row.
 */
const failSet = (now: number, base: number, error: string, kind: string): Sql => sql`
  UPDATE tasks SET
    status = CASE WHEN retry_count + 1 <= max_retries THEN ${settled} ELSE 'failed' END,
    not_before = CASE WHEN retry_count + 1 <= max_retries
      THEN ${now} + min(${base} * (1 << min(retry_count, 30)), ${MAX_RETRY_DELAY_MS}) ELSE NULL END,
    retry_count = retry_count + 1,
    last_error = ${error}, failure_type = ${kind},
    assigned_agent = NULL, claim_expires_at = NULL,
    updated_at = ${now}, version = version + 1`;

export const fail = (id: string, agent: string, now: number, base: number, error: string, kind: string): Sql =>
  sql`${failSet(now, base, error, kind)} WHERE ${held(id, agent, now)} RETURNING ${COLS}, ${needsSettle}`;

/** Every lapsed claim back to the queue: a `stalled` failure with no back-off. */
export const recover = (now: number): Sql => sql`
  ${failSet(now, 0, "claim expired", "stalled")}
  WHERE project = ${PROJECT} AND status IN ('claimed', 'in_progress') AND claim_expires_at <= ${now}
  RETURNING ${COLS}, ${needsSettle}`;

/** The label a failed task gives its dependants: the root cause it names, else itself (`labelOf`). */
const failedLabel = raw(`coalesce(
    (SELECT b.value FROM json_each(tasks.blockers) AS b WHERE ${namesTask("b.value").text} ORDER BY b.key LIMIT 1),
    'dependency ' || tasks.id || ' failed')`);

/** `(id, label)` of the tasks a recovery at `now` failed: the roots to block below. */
export const recoveredRoots = (now: number): Sql => sql`
  SELECT id, ${failedLabel} FROM tasks WHERE project = ${PROJECT} AND status = 'failed'
    AND updated_at = ${now} AND failure_type = 'stalled'`;

/** `(id, label)` of task `id` if a failure at `now` failed it. */
export const failedRoot = (id: string, now: number): Sql => sql`
  SELECT id, ${failedLabel} FROM tasks WHERE project = ${PROJECT} AND id = ${id} AND status = 'failed'
    AND updated_at = ${now}`;

/** `(id, label)` of one root given by the caller. */
export const root = (id: string, label: string): Sql => sql`SELECT ${id}, ${label}`;

/**
 * `rules.plan_block` for each root of `roots` (`(id, label)` rows, failed or
 * blocked tasks): every task below it, directly or not, becomes `blocked`
 * with the root's label among its blockers (added once); final and held tasks
 * are left alone (a held one is placed when it comes back to the queue), and
 * a task already blocked by a dependency keeps its blockers. A task below
 * several roots at once takes one label.
 */
export const blockBelow = (roots: Sql, now: number): Sql => sql`
  WITH RECURSIVE
    r(id, label) AS (${roots}),
    down(id, label) AS (
      SELECT d.task_id, r.label FROM task_deps AS d JOIN r ON d.project = ${PROJECT} AND d.depends_on = r.id
      UNION SELECT d.task_id, down.label FROM task_deps AS d JOIN down
        ON d.project = ${PROJECT} AND d.depends_on = down.id),
    want(id, label) AS (SELECT id, min(label) FROM down GROUP BY id)
  UPDATE tasks SET
    status = 'blocked',
    blockers = (SELECT CASE WHEN EXISTS (SELECT 1 FROM json_each(tasks.blockers) WHERE value = w.label)
        THEN tasks.blockers ELSE json_insert(tasks.blockers, '$[#]', w.label) END
      FROM want AS w WHERE w.id = tasks.id),
    updated_at = ${now}, version = version + 1
  WHERE project = ${PROJECT} AND id IN (SELECT id FROM want)
    AND status NOT IN ('completed', 'failed', 'claimed', 'in_progress')
    AND NOT (status = 'blocked' AND EXISTS (
      SELECT 1 FROM json_each(tasks.blockers) AS b WHERE ${namesTask("b.value")}))`;

/**
 * `rules.resettle` for the direct dependants of a task that just completed: a
 * pending one with no blockers whose every dependency is completed (an unknown
 * one is not) becomes `ready`.
 */
export const promoteDependants = (id: string, now: number): Sql => sql`
  UPDATE tasks SET status = 'ready', updated_at = ${now}, version = version + 1
  WHERE project = ${PROJECT} AND +status = 'pending' AND blockers = '[]'
    AND id IN (SELECT task_id FROM task_deps WHERE project = ${PROJECT} AND depends_on = ${id})
    AND NOT EXISTS (
      SELECT 1 FROM task_deps AS d LEFT JOIN tasks AS p ON p.project = d.project AND p.id = d.depends_on
      WHERE d.project = ${PROJECT} AND d.task_id = tasks.id AND (p.status IS NULL OR p.status <> 'completed'))`;

/** Status and blockers of rows given as a JSON array of `{id, status, blockers, updated_at, version}`. */
export const settleRows = (rowsJson: string): Sql => sql`
  UPDATE tasks SET status = json_extract(j.value, '$.status'), blockers = json_extract(j.value, '$.blockers'),
    updated_at = json_extract(j.value, '$.updated_at'), version = json_extract(j.value, '$.version')
  FROM json_each(${rowsJson}) AS j
  WHERE tasks.project = ${PROJECT} AND tasks.id = json_extract(j.value, '$.id')`;

/**
 * Abort the batch unless every task of a JSON array of `[id, version]` still
 * has that version (-1: still absent) and, when `graph` is given, the
 * project's graph version is still `graph`: what a decision read is still true.
 */
export const unchanged = (seenJson: string, graph: number | null): Sql => guard(sql`
  EXISTS (SELECT 1 FROM json_each(${seenJson}) AS j
    WHERE coalesce((SELECT t.version FROM tasks AS t
      WHERE t.project = ${PROJECT} AND t.id = json_extract(j.value, '$[0]')), -1) <> json_extract(j.value, '$[1]'))
  ${graph === null ? sql`` : sql`OR coalesce((SELECT version FROM task_graph WHERE project = ${PROJECT}), 0) <> ${graph}`}`);

/** Ids, statuses and versions of the ids in a JSON array (those that exist). */
export const statusesIn = (idsJson: string): Sql => sql`
  SELECT id, status, version FROM tasks WHERE project = ${PROJECT} AND id IN (SELECT value FROM json_each(${idsJson}))`;

/** Every edge below `id` (towards its dependants), for `rules.dependants_closure`. */
export const edgesBelow = (id: string): Sql => sql`
  WITH RECURSIVE below(id) AS (
    SELECT ${id}
    UNION SELECT d.task_id FROM task_deps AS d JOIN below ON d.project = ${PROJECT} AND d.depends_on = below.id)
  SELECT d.depends_on AS depends_on, d.task_id AS task_id FROM task_deps AS d
  WHERE d.project = ${PROJECT} AND d.depends_on IN (SELECT id FROM below)
  ORDER BY d.depends_on, d.task_id`;

/** Insert rows given as a JSON array of objects keyed by column (one bound parameter). */
export const insertRows = (rowsJson: string, upsert: boolean): Sql => {
  const values = raw(COLUMNS.map((c) => `json_extract(value, '$.${c}')`).join(", "));
  const onConflict = upsert
    ? raw(
        `ON CONFLICT (project, id) DO UPDATE SET ${COLUMNS.filter((c) => c !== "id")
          .map((c) => `${c} = excluded.${c}`)
          .join(", ")}`,
      )
    : raw("");
  // `WHERE true` keeps SQLite from reading ON CONFLICT as a join constraint.
  return sql`INSERT INTO tasks (project, ${COLS})
    SELECT ${PROJECT}, ${values} FROM json_each(${rowsJson}) WHERE true ${onConflict}`;
};

/** Insert dependency edges given as a JSON array of `[task_id, depends_on]`. */
export const insertEdges = (edgesJson: string): Sql => sql`
  INSERT OR IGNORE INTO task_deps (project, task_id, depends_on)
  SELECT ${PROJECT}, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(${edgesJson})`;

export const deleteEdgesOf = (idsJson: string): Sql => sql`
  DELETE FROM task_deps WHERE project = ${PROJECT} AND task_id IN (SELECT value FROM json_each(${idsJson}))`;

/** Every edge reachable upwards from `ids` (for the cycle check). */
export const edgesAbove = (ids: string[]): Sql => sql`
  WITH RECURSIVE above(id) AS (
    SELECT value FROM json_each(${JSON.stringify(ids)})
    UNION SELECT d.depends_on FROM task_deps AS d JOIN above ON d.project = ${PROJECT} AND d.task_id = above.id)
  SELECT d.task_id AS task_id, d.depends_on AS depends_on FROM task_deps AS d
  WHERE d.project = ${PROJECT} AND d.task_id IN (SELECT id FROM above)`;

export const allEdges = (): Sql =>
  sql`SELECT task_id, depends_on FROM task_deps WHERE project = ${PROJECT}`;

export const dependantsOf = (id: string): Sql => sql`
  SELECT task_id FROM task_deps WHERE project = ${PROJECT} AND depends_on = ${id} ORDER BY task_id LIMIT 20`;

export const deleteTask = (id: string): Sql => sql`DELETE FROM tasks WHERE project = ${PROJECT} AND id = ${id}`;

/** The project's graph version (no row: 0). */
export const graphVersion = (): Sql => sql`SELECT version FROM task_graph WHERE project = ${PROJECT}`;
/** One more edge change: the graph version goes up (decisions that read the graph then retry). */
export const bumpGraph = (): Sql => sql`
  INSERT INTO task_graph (project, version) VALUES (${PROJECT}, 1)
  ON CONFLICT (project) DO UPDATE SET version = version + 1`;

export const listTasks = (filters: {
  status?: readonly string[] | undefined;
  priority?: readonly string[] | undefined;
  agent?: string | undefined;
  heldOnly?: boolean;
  branch?: string | undefined;
  tag?: string | undefined;
  limit: number;
  offset: number;
}): Sql => {
  const where: Sql[] = [sql`t.project = ${PROJECT}`];
  if (filters.status?.length) {
    where.push(sql`t.status IN (SELECT value FROM json_each(${JSON.stringify(filters.status)}))`);
  }
  if (filters.priority?.length) {
    where.push(sql`t.priority IN (SELECT value FROM json_each(${JSON.stringify(filters.priority)}))`);
  }
  if (filters.agent !== undefined) where.push(sql`t.assigned_agent = ${filters.agent}`);
  if (filters.heldOnly) where.push(sql`t.status IN ('claimed', 'in_progress')`);
  if (filters.branch !== undefined) where.push(sql`t.branch = ${filters.branch}`);
  if (filters.tag !== undefined) {
    where.push(sql`EXISTS (SELECT 1 FROM json_each(t.tags) AS g WHERE g.value = ${filters.tag})`);
  }
  const conditions = where.reduce((acc, part) => sql`${acc} AND ${part}`);
  return sql`SELECT ${T_COLS} FROM tasks AS t WHERE ${conditions}
    ORDER BY t.created_at, t.rowid LIMIT ${filters.limit} OFFSET ${filters.offset}`;
};

export const countByStatus = (): Sql =>
  sql`SELECT status AS k, count(*) AS n FROM tasks WHERE project = ${PROJECT} GROUP BY status`;
export const countByPriority = (): Sql =>
  sql`SELECT priority AS k, count(*) AS n FROM tasks WHERE project = ${PROJECT} GROUP BY priority`;
export const meanCompletion = (): Sql => sql`
  SELECT avg(actual_minutes) AS m FROM tasks
  WHERE project = ${PROJECT} AND status = 'completed' AND actual_minutes IS NOT NULL`;

/** An update of the given columns (values already encoded), bumping the version. */
export const updateColumns = (id: string, values: Partial<Record<Column, unknown>>): Sql => {
  const sets = Object.entries(values).map(([column, value]) => {
    if (!(COLUMNS as readonly string[]).includes(column)) throw new Error(`unknown column ${column}`);
    return sql`${raw(column)} = ${value as string | number | null}`;
  });
  const assignments = sets.reduce((acc, part) => sql`${acc}, ${part}`);
  return sql`UPDATE tasks SET ${assignments}, version = version + 1
    WHERE project = ${PROJECT} AND id = ${id} RETURNING ${COLS}`;
};

/** The stored rows of the ids in a JSON array. */
export const rowsIn = (idsJson: string): Sql =>
  sql`SELECT ${COLS} FROM tasks WHERE project = ${PROJECT} AND id IN (SELECT value FROM json_each(${idsJson}))`;
