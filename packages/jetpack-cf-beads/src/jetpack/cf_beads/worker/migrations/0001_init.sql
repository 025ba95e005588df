-- Tasks of every project, one row per (project, id). Columns are those of the
-- seed's D1 `tasks` table and of jetpack-beads (JSON arrays as TEXT, times as
-- epoch milliseconds), so local and edge rows map one to one.

CREATE TABLE tasks (
  project TEXT NOT NULL,
  id TEXT NOT NULL,
  title TEXT NOT NULL,
  description TEXT,
  status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'ready', 'claimed', 'in_progress', 'blocked', 'completed', 'failed')),
  priority TEXT NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high', 'critical')),
  dependencies TEXT NOT NULL DEFAULT '[]',
  blockers TEXT NOT NULL DEFAULT '[]',
  required_skills TEXT NOT NULL DEFAULT '[]',
  estimated_minutes INTEGER,
  actual_minutes INTEGER,
  tags TEXT NOT NULL DEFAULT '[]',
  retry_count INTEGER NOT NULL DEFAULT 0,
  max_retries INTEGER NOT NULL DEFAULT 2,
  branch TEXT,
  origin_branch TEXT,
  target_branches TEXT NOT NULL DEFAULT '[]',
  assigned_agent TEXT,
  last_error TEXT,
  failure_type TEXT,
  last_attempt_at INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  completed_at INTEGER,
  metadata TEXT NOT NULL DEFAULT '{}',
  not_before INTEGER,
  claim_expires_at INTEGER,
  version INTEGER NOT NULL DEFAULT 1,
  priority_rank INTEGER GENERATED ALWAYS AS (
    CASE priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END) VIRTUAL,
  PRIMARY KEY (project, id),
  -- The claim invariant, kept by the database itself: a held task has a
  -- holder and an expiry; only a held task has an expiry.
  CHECK (status NOT IN ('claimed', 'in_progress')
         OR (assigned_agent IS NOT NULL AND claim_expires_at IS NOT NULL)),
  CHECK (claim_expires_at IS NULL OR status IN ('claimed', 'in_progress'))
);

-- Claim order (priority, age, id) over the claimable rows only.
CREATE INDEX tasks_claim_order ON tasks(project, priority_rank, created_at, id)
  WHERE status IN ('pending', 'ready');
CREATE INDEX tasks_claim_expiry ON tasks(project, claim_expires_at)
  WHERE status IN ('claimed', 'in_progress');
CREATE INDEX tasks_failed ON tasks(project, updated_at) WHERE status = 'failed';
CREATE INDEX tasks_created ON tasks(project, created_at);
CREATE INDEX tasks_status ON tasks(project, status);
CREATE INDEX tasks_agent ON tasks(project, assigned_agent);

-- One row per dependency edge, so readiness is an index probe. Deleting a task
-- others depend on fails here (no cascade on depends_on); a task's own edges
-- go with it.
CREATE TABLE task_deps (
  project TEXT NOT NULL,
  task_id TEXT NOT NULL,
  depends_on TEXT NOT NULL,
  PRIMARY KEY (project, task_id, depends_on),
  FOREIGN KEY (project, task_id) REFERENCES tasks(project, id) ON DELETE CASCADE,
  FOREIGN KEY (project, depends_on) REFERENCES tasks(project, id)
) WITHOUT ROWID;
CREATE INDEX task_deps_on ON task_deps(project, depends_on, task_id);

-- Per-project version of the dependency graph: a write that changes edges of
-- existing tasks (update, import with replace) bumps it with a compare-and-set,
-- so two concurrent edits can never close a cycle together.
CREATE TABLE task_graph (
  project TEXT PRIMARY KEY,
  version INTEGER NOT NULL
) WITHOUT ROWID;
