"""The store's schema comes from numbered migrations, and its queries from named methods.

Each migration is applied here to an empty database and to the database the code before
migrations left behind (built below with that code's own sqlite-utils calls).
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import asyncpg
import pytest
import sqlite_utils

from bot.feedback import FeedbackStore
from bot.schema import (
    CLAIM_COLUMNS,
    EVENT_COLUMNS,
    FEEDBACK_COLUMNS,
    FILE_COLUMNS,
    MIGRATION_NAMES,
    MIGRATIONS,
    POST_COLUMNS,
    POSTGRES_MIGRATIONS,
    POSTGRES_MIGRATIONS_TABLE,
    RUN_COLUMNS,
    RUN_LEASE_COLUMNS,
    SHARE_COLUMNS,
    THREAD_COLUMNS,
    THREAD_FILE_COLUMNS,
    THREAD_LOCK_COLUMNS,
    TURN_COLUMNS,
    MigrationError,
    migrate,
    migration,
)
from bot.store import ConversationStore, Store, ThreadFile, utc_iso

NOW = 1_764_115_200.0  # 2025-11-26 00:00 UTC

SCHEMA: dict[str, dict[str, type]] = {
    "events": EVENT_COLUMNS,
    "files": FILE_COLUMNS,
    "runs": {**RUN_COLUMNS, **RUN_LEASE_COLUMNS},  # m004 added the lease columns
    "threads": THREAD_COLUMNS,
    "turns": TURN_COLUMNS,
    "thread_files": THREAD_FILE_COLUMNS,
    "posts": POST_COLUMNS,
    "shares": SHARE_COLUMNS,
}
INDEXES = {
    ("files", ("sha256",)),
    ("runs", ("user_id", "started_at")),
    ("runs", ("status",)),
    ("runs", ("team_id", "started_at")),
    ("runs", ("owner",)),  # m004
    ("threads", ("user_id",)),
    ("turns", ("thread_key", "id")),
    ("posts", ("run_id",)),
    ("shares", ("channel_id", "user_id", "slack_file_id")),
}


def previous_code_schema(db: sqlite_utils.Database) -> None:
    """What ``Store._open`` did before migrations: create-if-not-exists, and missing columns
    added to ``files`` and ``runs`` only."""
    db.table("events").create({"key": str, "received_at": str}, pk="key", if_not_exists=True)
    db.table("files").create(FILE_COLUMNS, pk="id", if_not_exists=True)
    db.table("files").add_missing_columns([FILE_COLUMNS])
    db.table("files").create_index(["sha256"], if_not_exists=True)
    db.table("runs").create(RUN_COLUMNS, pk="id", if_not_exists=True)
    db.table("runs").add_missing_columns([RUN_COLUMNS])
    db.table("runs").create_index(["user_id", "started_at"], if_not_exists=True)
    db.table("runs").create_index(["status"], if_not_exists=True)
    db.table("runs").create_index(["team_id", "started_at"], if_not_exists=True)
    db.table("threads").create(THREAD_COLUMNS, pk="key", if_not_exists=True)
    db.table("threads").create_index(["user_id"], if_not_exists=True)
    db.table("turns").create(TURN_COLUMNS, pk="id", if_not_exists=True)
    db.table("turns").create_index(["thread_key", "id"], if_not_exists=True)
    db.table("thread_files").create(THREAD_FILE_COLUMNS, pk=("thread_key", "sha256"), if_not_exists=True)
    db.table("posts").create(POST_COLUMNS, pk=("channel_id", "ref"), if_not_exists=True)
    db.table("posts").create_index(["run_id"], if_not_exists=True)
    db.table("shares").create(SHARE_COLUMNS, pk="id", if_not_exists=True)
    db.table("shares").create_index(["channel_id", "user_id", "slack_file_id"], unique=True, if_not_exists=True)


def previous_code_database(path: Path) -> None:
    """A database an early release made (a ``threads`` table from before containers were kept,
    a ``runs`` table from before resumable requests), with rows in it, then opened by the code
    just before migrations: only ``runs`` got its column back."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE threads (key TEXT PRIMARY KEY, team_id TEXT, channel_id TEXT, thread_ts TEXT, "
            "user_id TEXT, source TEXT, created_at TEXT, updated_at TEXT)"
        )
        conn.execute(
            "INSERT INTO threads VALUES ('C0DATA:1.0', 'T0TEAM', 'C0DATA', '1.0', 'U0ALICE', 'mention', "
            "'2025-11-25T00:00:00.000Z', '2025-11-25T00:00:00.000Z')"
        )
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, user_id TEXT, status TEXT, started_at TEXT)")
        conn.execute("INSERT INTO runs VALUES (7, 'U0ALICE', 'succeeded', '2025-11-25T00:00:00.000Z')")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        previous_code_schema(sqlite_utils.Database(conn))


def columns(path: Path) -> dict[str, set[str]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: {row[1] for row in conn.execute(f"PRAGMA table_info({table})")} for table in tables}


def indexes(path: Path, *, tables: tuple[str, ...] = tuple(SCHEMA)) -> set[tuple[str, tuple[str, ...]]]:
    db = sqlite_utils.Database(path)
    try:
        return {
            (table, tuple(index.columns))
            for table in tables
            for index in db.table(table).indexes
            if not index.name.startswith("sqlite_autoindex_")  # a text primary key's own
        }
    finally:
        db.close()


def schema_sql(path: Path, *, without: tuple[str, ...] = ()) -> set[tuple[str, str]]:
    """The database's tables and indexes, except those of the tables in ``without``."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT name, sql, tbl_name FROM sqlite_master WHERE name NOT LIKE '%sqlite_migrations%'")
        return {(name, sql) for name, sql, table in rows if table not in without}


#: The tables migrations after m001 added (absent from the code before migrations).
LATER_TABLES = ("feedback", "claims", "thread_locks")


def test_the_migrations_are_numbered_in_order() -> None:
    assert MIGRATION_NAMES == ["m001_initial_schema", "m002_feedback", "m003_claims", "m004_leases"]
    assert all(name.startswith(f"m{n:03d}_") for n, name in enumerate(MIGRATION_NAMES, start=1))


def test_a_migration_out_of_sequence_is_refused() -> None:
    def m007_skips_ahead(db: sqlite_utils.Database) -> None:
        raise AssertionError("never registered, never run")

    with pytest.raises(ValueError, match="must be named m005_"):
        migration(m007_skips_ahead)
    assert MIGRATION_NAMES == ["m001_initial_schema", "m002_feedback", "m003_claims", "m004_leases"]


# -- m001_initial_schema -----------------------------------------------------------------------


async def test_m001_on_an_empty_database_makes_the_schema_the_previous_code_made(tmp_path: Path) -> None:
    async with Store(tmp_path / "new.db") as store:
        state = await store.schema_state()
    assert state.applied == tuple(MIGRATION_NAMES) and state.current and state.describe() == "migration 4 of 4"
    with contextlib.closing(sqlite3.connect(tmp_path / "old.db", isolation_level=None)) as conn:
        previous_code_schema(sqlite_utils.Database(conn))
    with contextlib.closing(sqlite3.connect(tmp_path / "m003.db", isolation_level=None)) as conn:
        MIGRATIONS.apply(sqlite_utils.Database(conn), stop_before="m004_leases")  # m004 alters runs
    assert schema_sql(tmp_path / "m003.db", without=LATER_TABLES) == schema_sql(tmp_path / "old.db")
    found = columns(tmp_path / "new.db")
    assert {table: found[table] for table in SCHEMA} == {table: set(cols) for table, cols in SCHEMA.items()}
    assert indexes(tmp_path / "new.db") == INDEXES


async def test_m001_brings_the_previous_codes_database_to_the_schema_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "analyst.db"
    previous_code_database(path)
    assert "container_id" not in columns(path)["threads"]  # the bug: never topped up before

    async with Store(path, clock=lambda: NOW) as store:
        state = await store.schema_state()
        conversations = ConversationStore(store)
        [run] = await store.all_runs()
        # what a follow-up in that old thread does: writes the columns the old table lacked
        await conversations.add_file("C0DATA:1.0", ThreadFile("abc", "file_1", "F1", "s.csv", "csv", 10))
        await conversations.record_exchange(
            "C0DATA:1.0",
            run_id=run["id"],
            model="claude-sonnet-5-5",
            user_content=[{"type": "text", "text": "what drives churn?"}],
            assistant_content=[{"type": "text", "text": "tenure"}],
            container_id="container_1",
            container_expires_at="2025-11-26T01:00:00Z",
        )
        conversation = await conversations.get("C0DATA:1.0")

    assert state.current and state.describe() == "migration 4 of 4"
    found = columns(path)
    assert {table: found[table] for table in SCHEMA} == {table: set(cols) for table, cols in SCHEMA.items()}
    assert indexes(path) == INDEXES
    assert run["id"] == 7 and run["status"] == "succeeded" and run["request"] is None
    assert conversation is not None and conversation.user_id == "U0ALICE"
    assert conversation.container_id == "container_1" and len(conversation.turns) == 2


# -- m002_feedback ------------------------------------------------------------------------------


async def test_m002_adds_feedback_to_a_database_at_m001_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "analyst.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        db = sqlite_utils.Database(conn)
        MIGRATIONS.apply(db, stop_before="m002_feedback")
        db.table("runs").insert({"id": 3, "user_id": "U0ALICE", "status": "succeeded", "source": "mention"})
    assert "feedback" not in columns(path)

    async with Store(path, clock=lambda: NOW) as store:
        state = await store.schema_state()
        feedback = FeedbackStore(store)
        await feedback.rate(run_id=3, user_id="U0BOB", team_id="T0TEAM", rating="bad")
        await feedback.comment(run_id=3, user_id="U0BOB", team_id="T0TEAM", comment="wrong column")
        await feedback.rate(run_id=3, user_id="U0BOB", team_id="T0TEAM", rating="good")  # toggled: last wins
        [row] = await feedback.of_run(3)
        [run] = await store.all_runs()
        ratings = await feedback.ratings_since(utc_iso(NOW - 60), team_id="T0TEAM")

    assert state.applied == tuple(MIGRATION_NAMES) and state.current
    assert columns(path)["feedback"] == set(FEEDBACK_COLUMNS)
    assert ("feedback", ("team_id", "updated_at")) in indexes(path, tables=("feedback",))
    assert run["id"] == 3
    assert (row["rating"], row["comment"]) == ("good", "wrong column")
    assert (ratings.good, ratings.bad) == (1, 0) and ratings.describe() == "👍 1 · 👎 0 (100 % positive)"


async def test_opening_a_current_database_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "analyst.db"
    async with Store(path):
        pass
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        assert migrate(sqlite_utils.Database(conn)) == ()
        assert conn.execute("SELECT count(*) FROM _sqlite_migrations").fetchone() == (len(MIGRATION_NAMES),)


async def test_a_migration_that_fails_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "analyst.db"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE shares (id INTEGER PRIMARY KEY, channel_id TEXT, user_id TEXT, slack_file_id TEXT)")
        conn.executemany("INSERT INTO shares (channel_id, user_id, slack_file_id) VALUES ('C', 'U', 'F')", [(), ()])
    before = schema_sql(path)
    store = Store(path)
    with pytest.raises(MigrationError, match=r"UNIQUE constraint failed.*left unchanged"):
        await store.open()
    await store.close()
    assert schema_sql(path) == before
    assert set(columns(path)) == {"shares"}


# -- m003_claims --------------------------------------------------------------------------------


async def test_m003_adds_claims_to_a_database_at_m002_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "analyst.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        db = sqlite_utils.Database(conn)
        MIGRATIONS.apply(db, stop_before="m003_claims")
        db.table("runs").insert({"id": 3, "user_id": "U0ALICE", "status": "succeeded", "source": "mention"})
        db.table("events").insert({"key": "event:Ev1", "received_at": "2025-11-25T00:00:00.000Z"})
    assert "claims" not in columns(path)

    async with Store(path, clock=lambda: NOW) as store:
        assert store.migrated == ("m003_claims", "m004_leases")
        assert await store.take_claim("upload:abc", stale_after=60) is True
        assert await store.claim("event:Ev1") is False  # the rows it had are kept
        [run] = await store.all_runs()

    assert columns(path)["claims"] == set(CLAIM_COLUMNS)
    assert run["id"] == 3


async def test_postgresql_m003_adds_claims_to_a_database_at_m002(postgres_url: str) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        async with connection.transaction():
            await connection.execute(POSTGRES_MIGRATIONS_TABLE)
            for name in ("m001_initial_schema", "m002_feedback"):
                for statement in POSTGRES_MIGRATIONS[name]:
                    await connection.execute(statement)
                await connection.execute("INSERT INTO migrations VALUES ($1, '2025-11-25T00:00:00Z')", name)
            await connection.execute("INSERT INTO events VALUES ('event:Ev1', '2025-11-25T00:00:00.000Z')")
    finally:
        await connection.close()

    async with Store(postgres_url, clock=lambda: NOW) as store:
        assert store.migrated == ("m003_claims", "m004_leases")
        assert await store.take_claim("upload:abc", stale_after=60) is True
        assert await store.claim("event:Ev1") is False


# -- named queries and typed values ------------------------------------------------------------


async def test_the_named_run_queries(store_target: Path | str) -> None:
    async with Store(store_target, clock=lambda: NOW) as store:
        queued = await store.create_run(source="mention", user_id="U0ALICE", team_id="T0TEAM")
        running = await store.create_run(source="dm", status="running", user_id="U0BOB", team_id="T0TEAM")
        done = await store.create_run(source="command", user_id="U0ALICE", team_id="T0TEAM")
        await store.update_run(done, status="succeeded")
        refused = await store.create_run(source="mention", status="refused", user_id="U0ALICE", team_id="T0TEAM")
        other_team = await store.create_run(source="cli", user_id="U0ALICE", team_id="T0OTHER")
        store.clock = lambda: NOW + 60
        later = await store.create_run(source="assistant", user_id="U0ALICE", team_id="T0TEAM")

        def ids(rows: list[dict[str, object]]) -> list[object]:
            return [row["id"] for row in rows]

        assert ids(await store.all_runs()) == [queued, running, done, refused, other_team, later]
        assert ids(await store.unfinished_runs()) == [queued, running, other_team, later]
        since = utc_iso(NOW)
        assert ids(await store.admitted_runs_of_user_since("U0ALICE", since)) == [queued, done, other_team, later]
        assert ids(await store.admitted_runs_of_user_since("U0ALICE", utc_iso(NOW + 1))) == [later]
        assert ids(await store.admitted_runs_of_team_since("T0TEAM", since)) == [queued, running, done, later]
        assert await store.count_runs() == 6
        [finished] = [run for run in await store.all_runs() if run["id"] == done]
        assert finished["finished_at"] == utc_iso(NOW)


async def test_values_the_ledger_cannot_hold_are_refused(store_target: Path | str) -> None:
    async with Store(store_target) as store:
        run_id = await store.create_run(source="mention")
        with pytest.raises(ValueError, match="unknown run status 'interrupted'"):
            await store.update_run(run_id, **{"status": "interrupted"})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown run source 'email'"):
            await store.create_run(**{"source": "email"})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown run columns: \\['colour'\\]"):
            await store.update_run(run_id, colour="red")
        with pytest.raises(ValueError, match="unknown post kind 'reaction'"):
            await store.record_post(channel_id="C", ref="1.0", kind="reaction", run_id=run_id)  # type: ignore[arg-type]
        assert [run["status"] for run in await store.all_runs()] == ["queued"]


# -- PostgreSQL: the same migrations, as DDL ---------------------------------------------------

SQL_TYPES = {str: "text", int: "bigint"}


async def postgres_columns(url: str) -> dict[str, dict[str, str]]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'"
        )
    finally:
        await connection.close()
    found: dict[str, dict[str, str]] = {}
    for row in rows:
        found.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
    return found


async def postgres_indexes(url: str) -> set[tuple[str, tuple[str, ...]]]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT t.relname AS table_name, array_agg(a.attname ORDER BY k.ord) AS columns "
            "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
            "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
            "WHERE n.nspname = 'public' AND NOT i.indisprimary GROUP BY i.indexrelid, t.relname"
        )
    finally:
        await connection.close()
    return {(row["table_name"], tuple(row["columns"])) for row in rows}


def test_every_migration_has_postgresql_ddl() -> None:
    assert list(POSTGRES_MIGRATIONS) == MIGRATION_NAMES


async def test_postgresql_migrations_make_the_schema_sqlite_has(postgres_url: str) -> None:
    async with Store(postgres_url) as store:
        state = await store.schema_state()
        assert store.migrated == tuple(MIGRATION_NAMES)
    assert state.applied == tuple(MIGRATION_NAMES) and state.current
    found = await postgres_columns(postgres_url)
    expected = {**SCHEMA, "feedback": FEEDBACK_COLUMNS, "claims": CLAIM_COLUMNS, "thread_locks": THREAD_LOCK_COLUMNS}
    assert {table: found[table] for table in expected} == {
        table: {name: SQL_TYPES[kind] for name, kind in cols.items()} for table, cols in expected.items()
    }
    assert await postgres_indexes(postgres_url) - {("feedback", ("team_id", "updated_at"))} == INDEXES

    async with Store(postgres_url) as reopened:  # a current database: nothing to apply
        assert reopened.migrated == ()


async def test_postgresql_m002_adds_feedback_to_a_database_at_m001_and_keeps_its_rows(postgres_url: str) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        async with connection.transaction():
            for statement in POSTGRES_MIGRATIONS["m001_initial_schema"]:
                await connection.execute(statement)
            await connection.execute(POSTGRES_MIGRATIONS_TABLE)
            await connection.execute(
                "INSERT INTO migrations VALUES ('m001_initial_schema', '2025-11-25T00:00:00.000Z')"
            )
            await connection.execute("INSERT INTO runs (user_id, status, source) VALUES ('U0ALICE', 'succeeded', 'dm')")
    finally:
        await connection.close()

    async with Store(postgres_url, clock=lambda: NOW) as store:
        assert store.migrated == ("m002_feedback", "m003_claims", "m004_leases")
        [run] = await store.all_runs()
        await FeedbackStore(store).rate(run_id=run["id"], user_id="U0BOB", team_id="T0TEAM", rating="good")
        [row] = await FeedbackStore(store).of_run(run["id"])
        next_id = await store.create_run(source="mention")
    assert run["status"] == "succeeded" and row["rating"] == "good"
    assert next_id == run["id"] + 1  # the identity column carries on after the rows it had


async def test_a_postgresql_migration_that_fails_leaves_the_database_as_it_was(postgres_url: str) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("CREATE TABLE shares (id BIGINT PRIMARY KEY)")  # in m001's way
    finally:
        await connection.close()
    store = Store(postgres_url)
    with pytest.raises(MigrationError, match=r'relation "shares" already exists.*left unchanged'):
        await store.open()
    await store.close()
    assert set(await postgres_columns(postgres_url)) == {"shares"}  # no migrations table, no half schema


# -- m004_leases --------------------------------------------------------------------------------


async def test_m004_adds_leases_and_thread_locks_to_a_database_at_m003_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "analyst.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        db = sqlite_utils.Database(conn)
        MIGRATIONS.apply(db, stop_before="m004_leases")
        db.table("runs").insert(
            {"id": 3, "user_id": "U0ALICE", "status": "running", "source": "mention", "started_at": "2025-11-25"}
        )
    assert "owner" not in columns(path)["runs"] and "thread_locks" not in columns(path)

    async with Store(path, clock=lambda: NOW) as store:
        assert store.migrated == ("m004_leases",)
        [left] = await store.runs_to_take_over()  # a run from before leases is unowned: free to take
        assert await store.take_over_run(3, lease_s=30) is True
        assert await store.take_thread_lock("C0DATA:1.0", run_id=3, lease_s=30) is True
        [run] = await store.all_runs()

    assert columns(path)["runs"] == set(RUN_COLUMNS) | set(RUN_LEASE_COLUMNS)
    assert columns(path)["thread_locks"] == set(THREAD_LOCK_COLUMNS)
    assert left["id"] == 3 and run["owner"] == store.owner and run["status"] == "running"


async def test_postgresql_m004_adds_leases_and_thread_locks_to_a_database_at_m003(postgres_url: str) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        async with connection.transaction():
            await connection.execute(POSTGRES_MIGRATIONS_TABLE)
            for name in ("m001_initial_schema", "m002_feedback", "m003_claims"):
                for statement in POSTGRES_MIGRATIONS[name]:
                    await connection.execute(statement)
                await connection.execute("INSERT INTO migrations VALUES ($1, '2025-11-25T00:00:00Z')", name)
            await connection.execute(
                "INSERT INTO runs (user_id, status, source, started_at) VALUES ('U0ALICE', 'queued', 'dm', '2025')"
            )
    finally:
        await connection.close()

    async with Store(postgres_url, clock=lambda: NOW) as store:
        assert store.migrated == ("m004_leases",)
        [left] = await store.runs_to_take_over()
        assert await store.take_over_run(left["id"], lease_s=30) is True
        assert await store.take_thread_lock("C0DATA:1.0", run_id=left["id"], lease_s=30) is True
        [run] = await store.all_runs()
    assert run["owner"] == store.owner and run["status"] == "queued"
