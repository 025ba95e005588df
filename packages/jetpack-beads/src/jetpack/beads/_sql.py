"""SQL statements of the task store, as plain strings with ``:named`` parameters.

The store runs them through SQLAlchemy (``text()``); the benchmark runs the
very same strings through the standard ``sqlite3`` module, so the two are
compared on identical work. Times are epoch milliseconds; JSON arrays are TEXT.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "CLAIM_NEXT",
    "CLAIM_ONE",
    "COLUMNS",
    "COUNT_BY_PRIORITY",
    "COUNT_BY_STATUS",
    "DELETE_DEPS",
    "DELETE_TASK",
    "DEPENDANTS_EDGES",
    "DEPENDANTS_EDGES_OF",
    "DEPENDENCY_EDGES",
    "EXISTING_IDS",
    "EXPIRED_CLAIMS",
    "HAS_DEPENDANTS",
    "INSERT_DEP",
    "INSERT_TASK",
    "MEAN_COMPLETION",
    "PROMOTE_DEPENDANTS",
    "READY_ALL",
    "READY_COUNT",
    "READY_TASKS",
    "SELECT_TASK",
    "SELECT_TASKS_IN",
    "STATUSES_IN",
    "UPSERT_TASK",
    "list_tasks_sql",
    "update_sql",
]

COLUMNS: tuple[str, ...] = (
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
)
"""Every stored column, in the order ``_rows.row_to_task`` reads them."""

_COLS = ", ".join(COLUMNS)
_T_COLS = ", ".join(f"t.{c}" for c in COLUMNS)

INSERT_TASK = f"INSERT INTO tasks ({_COLS}) VALUES ({', '.join(':' + c for c in COLUMNS)})"
UPSERT_TASK = (
    INSERT_TASK
    + " ON CONFLICT(id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "id")
)
INSERT_DEP = "INSERT OR IGNORE INTO task_deps (task_id, depends_on) VALUES (:task_id, :depends_on)"
DELETE_DEPS = "DELETE FROM task_deps WHERE task_id = :id"
DELETE_TASK = "DELETE FROM tasks WHERE id = :id"
SELECT_TASK = f"SELECT {_COLS} FROM tasks WHERE id = :id"
SELECT_TASKS_IN = f"SELECT {_COLS} FROM tasks WHERE id IN (SELECT value FROM json_each(:ids))"
EXISTING_IDS = "SELECT id FROM tasks WHERE id IN (SELECT value FROM json_each(:ids))"
STATUSES_IN = "SELECT id, status FROM tasks WHERE id IN (SELECT value FROM json_each(:ids))"
HAS_DEPENDANTS = "SELECT task_id FROM task_deps WHERE depends_on = :id ORDER BY task_id LIMIT 20"

_READY = """
    t.status IN ('pending', 'ready')
    AND (t.blockers IS NULL OR t.blockers = '[]')
    AND (t.not_before IS NULL OR t.not_before <= :now)
    AND NOT EXISTS (
        SELECT 1 FROM task_deps AS d LEFT JOIN tasks AS p ON p.id = d.depends_on
        WHERE d.task_id = t.id AND (p.status IS NULL OR p.status <> 'completed'))
"""
"""The ready rule (``jetpack.shared.rules.is_ready``) in SQL: an unknown
dependency counts as not completed, like a pending one."""

_SKILLS = """
    AND (:skills IS NULL OR NOT EXISTS (
        SELECT 1 FROM json_each(t.required_skills) AS r
        WHERE r.value NOT IN (SELECT value FROM json_each(:skills))))
"""
"""``rules.has_skills``: every required skill is among ``:skills`` (a JSON array);
a NULL ``:skills`` means any task."""

_ORDER = "ORDER BY t.priority_rank, t.created_at, t.id"
"""``rules.claim_order_key``: priority (critical first), then age, then id."""

_CLAIM_SCAN = "tasks AS t INDEXED BY idx_tasks_claim_order"
"""Walk the partial claim-order index: rows come out in claim order, so LIMIT stops
early. Without the hint SQLite picks ``idx_tasks_status`` and sorts everything."""

READY_TASKS = f"SELECT {_T_COLS} FROM {_CLAIM_SCAN} WHERE {_READY} {_ORDER} LIMIT :limit"
READY_ALL = f"SELECT {_T_COLS} FROM tasks AS t WHERE {_READY} {_ORDER}"
"""Every ready task: here one sort beats walking the index row by row."""
READY_COUNT = f"SELECT count(*) FROM tasks AS t WHERE {_READY}"

_CLAIM_SET = """
    UPDATE tasks SET status = 'claimed', assigned_agent = :agent,
        claim_expires_at = :expires, last_attempt_at = :now, updated_at = :now,
        version = version + 1
"""

CLAIM_NEXT = f"""{_CLAIM_SET}
    WHERE id = (SELECT t.id FROM {_CLAIM_SCAN} WHERE {_READY} {_SKILLS} {_ORDER} LIMIT 1)
    RETURNING {_COLS}"""
"""Claim the best ready task the agent can do: one statement, one winner."""

CLAIM_ONE = f"""{_CLAIM_SET}
    WHERE id = (SELECT t.id FROM tasks AS t WHERE t.id = :id AND {_READY})
    RETURNING {_COLS}"""
"""Claim one named task if it is ready."""

EXPIRED_CLAIMS = f"""SELECT {_COLS} FROM tasks
    WHERE status IN ('claimed', 'in_progress') AND claim_expires_at <= :now"""

PROMOTE_DEPENDANTS = """UPDATE tasks SET status = 'ready', updated_at = :now, version = version + 1
    WHERE id IN (SELECT task_id FROM task_deps WHERE depends_on = :id)
    AND +status = 'pending' AND (blockers IS NULL OR blockers = '[]')
    AND NOT EXISTS (
        SELECT 1 FROM task_deps AS d LEFT JOIN tasks AS p ON p.id = d.depends_on
        WHERE d.task_id = tasks.id AND (p.status IS NULL OR p.status <> 'completed'))"""
"""``rules.resettle`` for the direct dependants of a task that just completed: a pending
one with no blockers whose every dependency is completed is stored ``ready``. (``+status``
keeps SQLite from walking every pending task through the status index: the dependants
are found through ``task_deps``.)"""

DEPENDANTS_EDGES = """
    WITH RECURSIVE below(id) AS (
        SELECT :id UNION SELECT d.task_id FROM task_deps AS d JOIN below ON d.depends_on = below.id)
    SELECT d.depends_on, d.task_id FROM task_deps AS d
    WHERE d.depends_on IN below ORDER BY d.depends_on, d.task_id
"""
"""Every edge below ``:id`` (towards its dependants), for ``rules.dependants_closure``."""

DEPENDANTS_EDGES_OF = """
    WITH RECURSIVE below(id) AS (
        SELECT value FROM json_each(:ids)
        UNION SELECT d.task_id FROM task_deps AS d JOIN below ON d.depends_on = below.id)
    SELECT id FROM below WHERE id NOT IN (SELECT value FROM json_each(:ids))
"""
"""Every task below the ids in ``:ids`` (a JSON array), excluding them."""

DEPENDENCY_EDGES = """
    WITH RECURSIVE above(id) AS (
        SELECT value FROM json_each(:ids)
        UNION SELECT d.depends_on FROM task_deps AS d JOIN above ON d.task_id = above.id)
    SELECT d.task_id, d.depends_on FROM task_deps AS d WHERE d.task_id IN above
"""
"""Every edge reachable from the ids in ``:ids`` (a JSON array), for ``rules.find_cycle``."""

COUNT_BY_STATUS = "SELECT status, count(*) FROM tasks GROUP BY status"
COUNT_BY_PRIORITY = "SELECT priority, count(*) FROM tasks GROUP BY priority"
MEAN_COMPLETION = """SELECT avg(actual_minutes) FROM tasks
    WHERE status = 'completed' AND actual_minutes IS NOT NULL"""


def update_sql(columns: Iterable[str]) -> str:
    """``UPDATE`` of the given columns (each bound as ``:column``), bumping ``version``."""
    sets = [f"{c} = :{c}" for c in columns if c in COLUMNS and c not in ("id", "version")]
    sets.append("version = version + 1")
    return f"UPDATE tasks SET {', '.join(sets)} WHERE id = :id RETURNING {_COLS}"


def list_tasks_sql(
    *,
    status: bool,
    priority: bool,
    agent: bool,
    branch: bool,
    tag: bool,
    held_only: bool = False,
) -> str:
    """``SELECT`` for ``list_tasks``: each flag adds one filter on the matching parameter.

    ``:status`` and ``:priority`` are JSON arrays; results come in creation order
    (``created_at``, then insertion order, which also orders tasks created in the
    same millisecond), with ``:limit`` (-1 for none) and ``:offset``.
    """
    where = ["1"]
    if status:
        where.append("t.status IN (SELECT value FROM json_each(:status))")
    if priority:
        where.append("t.priority IN (SELECT value FROM json_each(:priority))")
    if agent:
        where.append("t.assigned_agent = :agent")
    if held_only:
        where.append("t.status IN ('claimed', 'in_progress')")
    if branch:
        where.append("t.branch = :branch")
    if tag:
        where.append("EXISTS (SELECT 1 FROM json_each(t.tags) AS g WHERE g.value = :tag)")
    return (
        f"SELECT {_T_COLS} FROM tasks AS t WHERE {' AND '.join(where)} "
        "ORDER BY t.created_at, t.rowid LIMIT :limit OFFSET :offset"
    )
