-- The gateway's tables: project tokens (hashed), the audit log, idempotency keys.

CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,          -- hex SHA-256 of the token; the token itself is never stored
  project TEXT NOT NULL,
  agent_id TEXT,                      -- set: the token acts only as this agent
  created_at INTEGER NOT NULL,        -- epoch ms, the Worker's clock
  expires_at INTEGER,                 -- NULL: never
  revoked_at INTEGER,
  created_by TEXT NOT NULL            -- 'admin' or the id of the project token that minted it
);
CREATE INDEX tokens_project ON tokens(project, created_at);

CREATE TABLE audit_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  project TEXT,                       -- NULL: no valid token, or the admin token
  token_id TEXT,                      -- 'admin', a token id, or NULL (no valid token)
  agent_id TEXT,
  method TEXT NOT NULL,
  route TEXT NOT NULL,                -- the matched route pattern, e.g. /api/tasks/:id
  path TEXT NOT NULL,                 -- the requested path (first 512 characters)
  status INTEGER NOT NULL,
  code TEXT                           -- the error code of a refusal
);
CREATE INDEX audit_log_project ON audit_log(project, seq);
CREATE INDEX audit_log_at ON audit_log(at);

CREATE TABLE idempotency_keys (
  project TEXT NOT NULL,              -- '' for the admin token
  key TEXT NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  state TEXT NOT NULL,                -- 'pending' while the first request runs, then 'done'
  status INTEGER,
  body TEXT,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (project, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);

-- Assertions inside a D1 batch (ScopedDb's CHANGED): `INSERT INTO batch_guard
-- SELECT 0 WHERE changes() = 0` fails this CHECK and rolls the whole batch
-- back when the statement before it changed nothing. Never holds a row.
CREATE TABLE batch_guard (ok INTEGER NOT NULL CHECK (ok = 1));

-- Parts of a request body too large for one request (over 1 MiB): the client
-- PUTs the parts, then sends the request with `Jetpack-Upload: <id>; parts=<n>`
-- and the gateway reassembles the body. Removed after use, or after a day.
CREATE TABLE upload_parts (
  project TEXT NOT NULL,
  upload_id TEXT NOT NULL,
  part INTEGER NOT NULL,
  body TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (project, upload_id, part)
) WITHOUT ROWID;
CREATE INDEX upload_parts_created ON upload_parts(created_at);
