"""Schema of the gateway database, one migration per release that changed it.

Each step is written once for sqlite and once for PostgreSQL (same tables, columns
and meaning; PostgreSQL gets double precision for times, identity ids, bytea and
plpgsql triggers). The schema version is the number of steps applied (see
``aiide_server_ext.stores.schema``). Steps are only ever appended: an upgraded server
brings an old database forward, and refuses one written by a newer release.
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

PG_IDENTITY_AND_AUDIT = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX revoked_tokens_at ON revoked_tokens(revoked_at);
CREATE TABLE revoked_families (
    family TEXT PRIMARY KEY,
    revoked_at DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE refresh_tokens (
    jti TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    username TEXT NOT NULL,
    scopes TEXT NOT NULL,
    issued_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    used_at DOUBLE PRECISION
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    name TEXT NOT NULL,
    salt BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    scopes TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    created_by TEXT NOT NULL,
    expires_at DOUBLE PRECISION,
    last_used_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION
);
CREATE INDEX api_keys_user ON api_keys(username);
CREATE TABLE audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
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
CREATE FUNCTION aiide_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
FOR EACH ROW EXECUTE FUNCTION aiide_audit_append_only();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
FOR EACH ROW EXECUTE FUNCTION aiide_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
FOR EACH STATEMENT EXECUTE FUNCTION aiide_audit_append_only();
"""

PG_METERING = """
CREATE TABLE usage (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    day TEXT NOT NULL,
    month TEXT NOT NULL,
    username TEXT NOT NULL,
    kind TEXT NOT NULL,
    provider TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    feature TEXT NOT NULL DEFAULT '',
    kernel_id TEXT NOT NULL DEFAULT '',
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    kernel_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    memory_gb_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    cost DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE INDEX usage_user_ts ON usage(username, ts);
CREATE INDEX usage_ts ON usage(ts);
CREATE TABLE usage_groups (
    usage_id BIGINT NOT NULL REFERENCES usage(id),
    grp TEXT NOT NULL,
    PRIMARY KEY (grp, usage_id)
);
"""

# Revocation cascades (issue 14): tokens, refresh families and keys minted by a token
# remember the credential they came from ("apikey:<id>"), so revoking it ends them too;
# revoked sources and per-user revocation epochs are polled by every server sharing the
# database. ALTER TABLE ... ADD COLUMN with a constant default is cheap in both dialects.
SOURCES = """
ALTER TABLE refresh_tokens ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN source TEXT NOT NULL DEFAULT '';
CREATE INDEX api_keys_source ON api_keys(source);
CREATE INDEX refresh_tokens_user ON refresh_tokens(username);
CREATE TABLE revoked_sources (
    source TEXT PRIMARY KEY,
    revoked_at REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX revoked_sources_at ON revoked_sources(revoked_at);
CREATE TABLE revoked_users (
    username TEXT PRIMARY KEY,
    revoked_at REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX revoked_users_at ON revoked_users(revoked_at);
"""

PG_SOURCES = SOURCES.replace("REAL", "DOUBLE PRECISION")

# The key broker's course state (issue 21): what instructors change at run time and each
# student's figures per day, so Redis (a cache and counter for the hot path) is rebuilt
# from here after a restart instead of starting empty (see aiide_server_ext/hub/broker/durable.py).
BROKER_STATE = """
CREATE TABLE broker_courses (
    course TEXT PRIMARY KEY,
    changes TEXT NOT NULL,
    revision INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE broker_usage (
    day TEXT NOT NULL,
    username TEXT NOT NULL,
    metric TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (day, username, metric)
);
CREATE TABLE broker_groups (username TEXT PRIMARY KEY, groups TEXT NOT NULL);
"""

PG_BROKER_STATE = BROKER_STATE.replace("REAL", "DOUBLE PRECISION").replace(
    "value INTEGER", "value BIGINT"
)

# Conversations students share with their instructors (issue 21, finding 10): a copy the
# student sent on purpose, deleted when they stop sharing (hub/sharing.py).
BROKER_SHARES = """
CREATE TABLE broker_shares (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    conversation TEXT NOT NULL,
    courses TEXT NOT NULL,
    title TEXT NOT NULL,
    note TEXT NOT NULL,
    transcript TEXT NOT NULL,
    shared_at REAL NOT NULL,
    UNIQUE (username, conversation)
);
"""

PG_BROKER_SHARES = BROKER_SHARES.replace("REAL", "DOUBLE PRECISION")

# The help each student used per assignment and cell (issue 15, tutoring): hint levels,
# fixes and tokens, for the instructor dashboard and its CSV (hub/broker/helpuse.py).
BROKER_HELP = """
CREATE TABLE broker_help (
    course TEXT NOT NULL,
    username TEXT NOT NULL,
    assignment TEXT NOT NULL,
    cell TEXT NOT NULL,
    hints INTEGER NOT NULL,
    fixes INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (course, username, assignment, cell)
);
"""

PG_BROKER_HELP = BROKER_HELP.replace("REAL", "DOUBLE PRECISION").replace(
    "tokens INTEGER", "tokens BIGINT"
)

# Prompt caching (issue 17, item 5): of a call's input tokens, those read from and written
# to the provider's prompt cache, each priced at its own rate (metering.py).
USAGE_CACHED = """
ALTER TABLE usage ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
"""
PG_USAGE_CACHED = USAGE_CACHED.replace("INTEGER", "BIGINT")

#: Append only, to both lists. Index + 1 is the schema version the step produces.
MIGRATIONS: list[str] = [
    IDENTITY_AND_AUDIT, METERING, SOURCES, BROKER_STATE, BROKER_SHARES, BROKER_HELP,
    USAGE_CACHED,
]  # fmt: skip
PG_MIGRATIONS: list[str] = [
    PG_IDENTITY_AND_AUDIT, PG_METERING, PG_SOURCES, PG_BROKER_STATE, PG_BROKER_SHARES,
    PG_BROKER_HELP, PG_USAGE_CACHED,
]  # fmt: skip
STEPS = {"sqlite": MIGRATIONS, "postgresql": PG_MIGRATIONS}
assert len(MIGRATIONS) == len(PG_MIGRATIONS), "every step needs both dialects"
