"""The store's schema: its tables, the values its text columns hold, and the numbered migrations.

The schema evolves only through numbered migrations, each written for both backends:

- SQLite: :data:`MIGRATIONS`, an ``sqlite_utils.Migrations`` set (new in sqlite-utils 4) that records
  each migration it applies in the ``_sqlite_migrations`` table (it also tops up databases made before
  migrations existed, see m001);
- PostgreSQL: :data:`POSTGRES_MIGRATIONS`, the same names with their DDL, recorded in a
  ``migrations`` table.

To change the schema, append a migration (``m00N_…``) to both, and a test in
tests/test_store_migrations.py that applies it to a database at the previous migration; never edit one
that has shipped. The column dicts below describe the schema *after* the last migration, for the
store's own checks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import sqlite_utils

from bot.db import Database, Queries, SqliteDatabase, lock

#: What ``runs.status`` holds. ``queued`` → ``running`` → one of the terminal four (``cancelled``:
#: stopped by its asker or an admin); a request over its quota is recorded straight as ``refused``.
#: A run the process stopped under (shutdown, crash) is left — or put back — ``queued`` with a note
#: in ``error``, and the next start resumes it or marks it ``failed``: "interrupted" is how a run
#: *ended in this process*, never a stored status.
RunStatus = Literal["queued", "running", "succeeded", "failed", "refused", "cancelled"]
#: Where a run came from: an @mention, a DM, the assistant pane, ``/analyze``, or ``slack-analyst ask``.
RunSource = Literal["mention", "dm", "assistant", "command", "cli"]
#: What ``posts.ref`` names: a message (its ts) or a file (its Slack file id).
PostKind = Literal["message", "file"]
#: A person's rating of an answer (Slack's feedback buttons).
Rating = Literal["good", "bad"]
#: What ``files.origin`` holds: a person's file we uploaded, or one code execution made.
FileOrigin = Literal["upload", "generated"]

RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
TERMINAL_STATUSES: frozenset[RunStatus] = frozenset({"succeeded", "failed", "refused", "cancelled"})
UNFINISHED_STATUSES: tuple[RunStatus, ...] = ("queued", "running")
RUN_SOURCES: tuple[RunSource, ...] = get_args(RunSource)
POST_KINDS: tuple[PostKind, ...] = get_args(PostKind)
RATINGS: tuple[Rating, ...] = get_args(Rating)

EVENT_COLUMNS: dict[str, type] = {
    "key": str,  # "event:<Slack event id>" or a request's dedupe key
    "received_at": str,
}

RUN_COLUMNS: dict[str, type] = {
    "id": int,
    "team_id": str,
    "channel_id": str,
    "thread_ts": str,
    "message_ts": str,
    "user_id": str,
    "source": str,  # a RunSource
    "question": str,
    "status": str,  # a RunStatus
    "started_at": str,
    "finished_at": str,
    "model": str,
    "tool_version": str,
    "container_id": str,
    "input_tokens": int,
    "output_tokens": int,
    "cache_read_tokens": int,
    "cache_write_tokens": int,
    "web_search_requests": int,  # billed per search (usage.server_tool_use)
    "web_fetch_requests": int,
    "code_executions": int,
    "files_in": int,
    "files_out": int,
    "error": str,
    "request": str,  # the request as JSON, so an interrupted run can be resumed
}

FILE_COLUMNS: dict[str, type] = {
    "id": str,  # the Anthropic Files API id
    "sha256": str,
    "origin": str,  # a FileOrigin
    "filename": str,
    "mime_type": str,
    "size_bytes": int,
    "team_id": str,
    "user_id": str,
    "run_id": int,
    "created_at": str,
    "deleted_at": str,
}

THREAD_COLUMNS: dict[str, type] = {
    "key": str,  # "<channel>:<thread_ts>"
    "team_id": str,
    "channel_id": str,
    "thread_ts": str,
    "user_id": str,  # who started the conversation
    "source": str,  # a RunSource
    "container_id": str,
    "container_expires_at": str,
    "created_at": str,
    "updated_at": str,
}

TURN_COLUMNS: dict[str, type] = {
    "id": int,
    "thread_key": str,
    "run_id": int,
    "role": str,  # "user" or "assistant"
    "content": str,  # the API message content, as JSON
    "model": str,
    "created_at": str,
}

THREAD_FILE_COLUMNS: dict[str, type] = {
    "thread_key": str,
    "sha256": str,
    "file_id": str,  # Files API id (may change when a lost file is uploaded again)
    "slack_file_id": str,
    "filename": str,
    "kind": str,
    "size_bytes": int,
    "added_at": str,
}

SHARE_COLUMNS: dict[str, type] = {
    "id": int,
    "team_id": str,
    "channel_id": str,
    "user_id": str,
    "slack_file_id": str,
    "shared_at": str,
}

POST_COLUMNS: dict[str, type] = {
    "channel_id": str,
    "ref": str,  # a message ts, or a Slack file id
    "kind": str,  # a PostKind
    "run_id": int,
    "posted_at": str,
}

FEEDBACK_COLUMNS: dict[str, type] = {
    "run_id": int,
    "user_id": str,
    "team_id": str,
    "rating": str,  # a Rating; the last one the person gave (Slack sends every toggle, no state)
    "comment": str,  # what was wrong, from the 👎 form (optional)
    "updated_at": str,
}

CLAIM_COLUMNS: dict[str, type] = {
    "key": str,  # what is claimed: "upload:<sha256>", "delete:<Files API id>"
    "holder": str,  # the Store (process) holding it
    "claimed_at": str,  # when; a claim older than its work could take is stale and may be taken over
}

#: Columns m004 added to ``runs`` (not in :data:`RUN_COLUMNS`, which m001 creates): which process
#: carries the run out and until when (its lease), and a Stop asked for at a process not running it.
#: Only the store's lease statements write them (see bot/leases.py).
RUN_LEASE_COLUMNS: dict[str, type] = {
    "owner": str,  # "<host>:<pid>:<random>", the process carrying the run out; NULL = free to take
    "lease_until": str,  # the owner's claim lasts until then unless renewed
    "stop_requested_by": str,  # who pressed Stop at another process (the owner stops the run)
}

THREAD_LOCK_COLUMNS: dict[str, type] = {
    "thread_key": str,  # "<channel>:<thread_ts>": one analysis at a time per thread, across processes
    "owner": str,  # the process holding it
    "run_id": int,  # the run it is held for, when known
    "lease_until": str,  # renewed with the owner's runs; an expired one may be taken
}

MIGRATIONS = sqlite_utils.Migrations("slack-analyst")
#: The names of :data:`MIGRATIONS`, in order (``mNNN_what_it_does``).
MIGRATION_NAMES: list[str] = []

Migration = Callable[[sqlite_utils.Database], None]


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next numbered migration (its name must carry the next number)."""
    number = len(MIGRATION_NAMES) + 1
    if not fn.__name__.startswith(f"m{number:03d}_"):
        raise ValueError(f"migration {fn.__name__} must be named m{number:03d}_…")
    MIGRATION_NAMES.append(fn.__name__)
    MIGRATIONS(name=fn.__name__)(fn)
    return fn


@migration
def m001_initial_schema(db: sqlite_utils.Database) -> None:
    """Every table and index of the first release.

    Databases made before migrations existed were built by create-if-not-exists, so any of their
    tables may be there already, possibly without columns added since (only ``files`` and ``runs``
    were ever topped up). Those tables are kept with their rows and given the missing columns.
    """

    def table(name: str, columns: dict[str, type], pk: str | tuple[str, ...]) -> sqlite_utils.db.Table:
        created = db.table(name)
        created.create(columns, pk=pk, if_not_exists=True)
        created.add_missing_columns([columns])
        return created

    table("events", EVENT_COLUMNS, "key")
    table("files", FILE_COLUMNS, "id").create_index(["sha256"], if_not_exists=True)
    runs = table("runs", RUN_COLUMNS, "id")
    runs.create_index(["user_id", "started_at"], if_not_exists=True)
    runs.create_index(["status"], if_not_exists=True)
    runs.create_index(["team_id", "started_at"], if_not_exists=True)
    table("threads", THREAD_COLUMNS, "key").create_index(["user_id"], if_not_exists=True)
    table("turns", TURN_COLUMNS, "id").create_index(["thread_key", "id"], if_not_exists=True)
    table("thread_files", THREAD_FILE_COLUMNS, ("thread_key", "sha256"))
    table("posts", POST_COLUMNS, ("channel_id", "ref")).create_index(["run_id"], if_not_exists=True)
    table("shares", SHARE_COLUMNS, "id").create_index(
        ["channel_id", "user_id", "slack_file_id"], unique=True, if_not_exists=True
    )


@migration
def m002_feedback(db: sqlite_utils.Database) -> None:
    """Ratings of answers, one row per run and person (the latest rating and comment)."""
    feedback = db.table("feedback")
    feedback.create(FEEDBACK_COLUMNS, pk=("run_id", "user_id"))
    feedback.create_index(["team_id", "updated_at"])


@migration
def m003_claims(db: sqlite_utils.Database) -> None:
    """Claims on work exactly one process may do at a time: uploading one content, deleting one file."""
    db.table("claims").create(CLAIM_COLUMNS, pk="key")


@migration
def m004_leases(db: sqlite_utils.Database) -> None:
    """Run leases (owner, lease_until, a Stop shared through the database) and per-thread locks."""
    runs = db.table("runs")
    for name, kind in RUN_LEASE_COLUMNS.items():
        runs.add_column(name, kind)
    runs.create_index(["owner"])
    db.table("thread_locks").create(THREAD_LOCK_COLUMNS, pk="thread_key")


class MigrationError(Exception):
    """The database could not be brought to the current schema (nothing was changed)."""


@dataclass(frozen=True)
class SchemaState:
    """Which of the code's migrations a database has had, and any it has that the code doesn't know."""

    applied: tuple[str, ...]
    known: tuple[str, ...]

    @property
    def unknown(self) -> tuple[str, ...]:
        """Migrations a newer release applied: this code is older than the database."""
        return tuple(name for name in self.applied if name not in self.known)

    @property
    def current(self) -> bool:
        return set(self.known) <= set(self.applied) and not self.unknown

    def describe(self) -> str:
        done = sum(1 for name in self.known if name in self.applied)
        return f"migration {done} of {len(self.known)}"


def schema_state(db: sqlite_utils.Database) -> SchemaState:
    return SchemaState(
        applied=tuple(m.name for m in MIGRATIONS.applied(db)),
        known=tuple(MIGRATION_NAMES),
    )


def migrate(db: sqlite_utils.Database) -> tuple[str, ...]:
    """Apply the pending migrations; returns their names.

    All of them run in one ``BEGIN IMMEDIATE`` transaction (each in its own savepoint), so two
    processes starting at once can't both apply one, and a failure leaves the database as it was.
    """
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        pending = tuple(m.name for m in MIGRATIONS.pending(db))
        MIGRATIONS.apply(db)
        conn.execute("COMMIT")
    except sqlite3.Error as error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise MigrationError(f"upgrading the database schema failed ({error}); it was left unchanged") from error
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return pending


# ---------------------------------------------------------------------------------- PostgreSQL

#: Each migration's DDL for PostgreSQL, by name (the same names, in the same order, as
#: :data:`MIGRATION_NAMES`). Text columns hold what they hold on SQLite (timestamps as sortable
#: UTC ISO 8601 text, JSON as text), integers are BIGINT, and ids are identity columns.
POSTGRES_MIGRATIONS: dict[str, tuple[str, ...]] = {
    "m001_initial_schema": (
        "CREATE TABLE events (key TEXT PRIMARY KEY, received_at TEXT)",
        "CREATE TABLE files (id TEXT PRIMARY KEY, sha256 TEXT, origin TEXT, filename TEXT, mime_type TEXT, "
        "size_bytes BIGINT, team_id TEXT, user_id TEXT, run_id BIGINT, created_at TEXT, deleted_at TEXT)",
        "CREATE INDEX idx_files_sha256 ON files (sha256)",
        "CREATE TABLE runs (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, team_id TEXT, channel_id TEXT, "
        "thread_ts TEXT, message_ts TEXT, user_id TEXT, source TEXT, question TEXT, status TEXT, started_at TEXT, "
        "finished_at TEXT, model TEXT, tool_version TEXT, container_id TEXT, input_tokens BIGINT, "
        "output_tokens BIGINT, cache_read_tokens BIGINT, cache_write_tokens BIGINT, web_search_requests BIGINT, "
        "web_fetch_requests BIGINT, code_executions BIGINT, files_in BIGINT, files_out BIGINT, error TEXT, "
        "request TEXT)",
        "CREATE INDEX idx_runs_user_id_started_at ON runs (user_id, started_at)",
        "CREATE INDEX idx_runs_status ON runs (status)",
        "CREATE INDEX idx_runs_team_id_started_at ON runs (team_id, started_at)",
        "CREATE TABLE threads (key TEXT PRIMARY KEY, team_id TEXT, channel_id TEXT, thread_ts TEXT, user_id TEXT, "
        "source TEXT, container_id TEXT, container_expires_at TEXT, created_at TEXT, updated_at TEXT)",
        "CREATE INDEX idx_threads_user_id ON threads (user_id)",
        "CREATE TABLE turns (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, thread_key TEXT, run_id BIGINT, "
        "role TEXT, content TEXT, model TEXT, created_at TEXT)",
        "CREATE INDEX idx_turns_thread_key_id ON turns (thread_key, id)",
        "CREATE TABLE thread_files (thread_key TEXT, sha256 TEXT, file_id TEXT, slack_file_id TEXT, filename TEXT, "
        "kind TEXT, size_bytes BIGINT, added_at TEXT, PRIMARY KEY (thread_key, sha256))",
        "CREATE TABLE posts (channel_id TEXT, ref TEXT, kind TEXT, run_id BIGINT, posted_at TEXT, "
        "PRIMARY KEY (channel_id, ref))",
        "CREATE INDEX idx_posts_run_id ON posts (run_id)",
        "CREATE TABLE shares (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, team_id TEXT, "
        "channel_id TEXT, user_id TEXT, slack_file_id TEXT, shared_at TEXT)",
        "CREATE UNIQUE INDEX idx_shares_channel_id_user_id_slack_file_id "
        "ON shares (channel_id, user_id, slack_file_id)",
    ),
    "m002_feedback": (
        "CREATE TABLE feedback (run_id BIGINT, user_id TEXT, team_id TEXT, rating TEXT, comment TEXT, "
        "updated_at TEXT, PRIMARY KEY (run_id, user_id))",
        "CREATE INDEX idx_feedback_team_id_updated_at ON feedback (team_id, updated_at)",
    ),
    "m003_claims": ("CREATE TABLE claims (key TEXT PRIMARY KEY, holder TEXT, claimed_at TEXT)",),
    "m004_leases": (
        "ALTER TABLE runs ADD COLUMN owner TEXT",
        "ALTER TABLE runs ADD COLUMN lease_until TEXT",
        "ALTER TABLE runs ADD COLUMN stop_requested_by TEXT",
        "CREATE INDEX idx_runs_owner ON runs (owner)",
        "CREATE TABLE thread_locks (thread_key TEXT PRIMARY KEY, owner TEXT, run_id BIGINT, lease_until TEXT)",
    ),
}

POSTGRES_MIGRATIONS_TABLE = "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"


async def migrate_postgres(tx: Queries, *, now: str) -> tuple[str, ...]:
    """Apply the pending PostgreSQL migrations inside ``tx``; returns their names.

    The transaction holds an advisory lock first, so two processes starting at once apply each
    migration once; DDL is transactional in PostgreSQL, so a failure leaves the database as it was.
    """
    missing = [name for name in MIGRATION_NAMES if name not in POSTGRES_MIGRATIONS]
    if missing or len(POSTGRES_MIGRATIONS) != len(MIGRATION_NAMES):
        raise RuntimeError(f"migrations without PostgreSQL DDL: {missing or sorted(POSTGRES_MIGRATIONS)}")
    await lock(tx, "schema-migrations")
    await tx.execute(POSTGRES_MIGRATIONS_TABLE)
    applied = {row["name"] for row in await tx.fetch("SELECT name FROM migrations")}
    pending = tuple(name for name in MIGRATION_NAMES if name not in applied)
    for name in pending:
        for statement in POSTGRES_MIGRATIONS[name]:
            await tx.execute(statement)
        await tx.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", [name, now])
    return pending


async def migrate_database(database: Database, *, now: str) -> tuple[str, ...]:
    """Bring ``database`` to the current schema (see :func:`migrate`, :func:`migrate_postgres`)."""
    if isinstance(database, SqliteDatabase):
        return await database.run(lambda conn: migrate(sqlite_utils.Database(conn)))
    try:
        async with database.transaction() as tx:
            return await migrate_postgres(tx, now=now)
    except database.errors as error:
        raise MigrationError(f"upgrading the database schema failed ({error}); it was left unchanged") from error


async def database_schema_state(database: Database) -> SchemaState:
    if isinstance(database, SqliteDatabase):
        return await database.run(lambda conn: schema_state(sqlite_utils.Database(conn)))
    rows = await database.fetch("SELECT name FROM migrations ORDER BY name")
    return SchemaState(applied=tuple(row["name"] for row in rows), known=tuple(MIGRATION_NAMES))
