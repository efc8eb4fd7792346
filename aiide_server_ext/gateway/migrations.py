"""Schema of the gateway database, one migration per release that changed it.

``PRAGMA user_version`` holds the number of migrations applied. Migrations are
only ever appended: an upgraded server brings an old file forward in one
transaction per step, and refuses a file written by a newer release.
"""

from __future__ import annotations

IDENTITY_AND_AUDIT = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at REAL NOT NULL,
    revoked_at REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX revoked_tokens_at ON revoked_tokens(revoked_at);
CREATE TABLE revoked_families (
    family TEXT PRIMARY KEY,
    revoked_at REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE refresh_tokens (
    jti TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    username TEXT NOT NULL,
    scopes TEXT NOT NULL,
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    name TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    scopes TEXT NOT NULL,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    expires_at REAL,
    last_used_at REAL,
    revoked_at REAL
);
CREATE INDEX api_keys_user ON api_keys(username);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    actor TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_ts ON audit(ts);
CREATE INDEX audit_actor ON audit(actor, ts);
CREATE INDEX audit_action ON audit(action, ts);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

METERING = """
CREATE TABLE usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    day TEXT NOT NULL,
    month TEXT NOT NULL,
    username TEXT NOT NULL,
    kind TEXT NOT NULL,
    provider TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    feature TEXT NOT NULL DEFAULT '',
    kernel_id TEXT NOT NULL DEFAULT '',
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    kernel_seconds REAL NOT NULL DEFAULT 0,
    memory_gb_seconds REAL NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0
);
CREATE INDEX usage_user_ts ON usage(username, ts);
CREATE INDEX usage_ts ON usage(ts);
CREATE TABLE usage_groups (
    usage_id INTEGER NOT NULL REFERENCES usage(id),
    grp TEXT NOT NULL,
    PRIMARY KEY (grp, usage_id)
);
"""

#: Append only. Index + 1 is the schema version the step produces.
MIGRATIONS: list[str] = [IDENTITY_AND_AUDIT, METERING]
