"""The bot's store: seen events, uploaded files, conversations and the run ledger.

Written once, in the SQL both engines speak, over a :class:`bot.db.Database`: SQLite (one
connection on one worker thread, WAL, a busy timeout) or, when ``ANALYST_DB`` is a
``postgresql://`` URL, PostgreSQL through an asyncpg pool. What must be atomic across
processes — claims, quota admission — is one statement or one transaction in the database.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from bot import leases
from bot.db import DEFAULT_POOL_SIZE, Database, DatabaseTarget, Queries, lock, open_database
from bot.progress import Usage
from bot.quotas import DAY, HOUR, LedgerState, Limits, Refusal, Totals, check, limit_reached, run_tokens
from bot.schema import (
    POST_KINDS,
    RUN_COLUMNS,
    RUN_SOURCES,
    RUN_STATUSES,
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    FileOrigin,
    PostKind,
    RunSource,
    RunStatus,
    SchemaState,
    database_schema_state,
    migrate_database,
)


class UsageColumns(TypedDict):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    web_search_requests: int
    web_fetch_requests: int


def usage_columns(usage: Usage) -> UsageColumns:
    """The ledger's usage columns of a run, from its total :class:`~bot.progress.Usage`."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "web_search_requests": usage.web_search_requests,
        "web_fetch_requests": usage.web_fetch_requests,
    }


#: The columns :func:`~bot.quotas.run_tokens` reads, for the quota queries.
USAGE_COUNT_COLUMNS = "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens"


def thread_key(channel_id: str, thread_ts: str) -> str:
    return f"{channel_id}:{thread_ts}"


def utc_iso(timestamp: float) -> str:
    """A sortable UTC timestamp with millisecond precision, as stored in every table."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@dataclass(frozen=True)
class FileRecord:
    id: str
    sha256: str | None
    origin: FileOrigin
    filename: str
    mime_type: str
    size_bytes: int


class Store:
    """The bot's records on a :class:`~bot.db.Database` (SQLite or PostgreSQL, by ``target``)."""

    def __init__(
        self,
        target: DatabaseTarget,
        *,
        clock: Callable[[], float] | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        import time

        self.target = target
        self.clock = clock or time.time
        self.database: Database = open_database(target, pool_size=pool_size)
        self.migrated: tuple[str, ...] = ()  # the migrations ``open`` applied
        self.holder = uuid.uuid4().hex  # whose claims are this store's (see take_claim)
        self.owner = leases.make_owner()  # whose run leases and thread locks are this process's

    # -- plumbing --------------------------------------------------------------------

    async def open(self) -> Store:
        await self.database.open()
        try:
            self.migrated = await migrate_database(
                self.database, now=self.now()
            )  # create the schema, or bring an older database up to it
        except BaseException:
            await self.database.close()
            raise
        leases.opened(self.owner)
        return self

    async def close(self) -> None:
        leases.closed(self.owner)
        await self.database.close()

    async def __aenter__(self) -> Store:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def now(self) -> str:
        return utc_iso(self.clock())

    # -- events ----------------------------------------------------------------------

    async def claim(self, *keys: str) -> bool:
        """Record ``keys`` as seen, in one statement (atomically, across processes too). True only
        if none of them had been seen; either way every one of them is seen from now on."""
        now = self.now()
        won = await self.database.fetch(
            f"INSERT INTO events (key, received_at) VALUES {', '.join('(?, ?)' for _ in keys)} "  # noqa: S608 - placeholders
            "ON CONFLICT (key) DO NOTHING RETURNING key",
            [value for key in keys for value in (key, now)],
        )
        return len(won) == len(set(keys))

    # -- claims on work one process does at a time --------------------------------------

    async def take_claim(self, key: str, *, stale_after: float) -> bool:
        """Claim ``key`` for this store: True if it was free, or held for longer than
        ``stale_after`` seconds (its holder is presumed gone). One statement, so exactly one of
        several processes racing for it wins. Give it up with :meth:`release_claim`."""
        now = self.clock()
        won = await self.database.fetchone(
            "INSERT INTO claims (key, holder, claimed_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
            "SET holder = excluded.holder, claimed_at = excluded.claimed_at WHERE claims.claimed_at < ? "
            "RETURNING key",
            [key, self.holder, utc_iso(now), utc_iso(now - stale_after)],
        )
        return won is not None

    async def release_claim(self, key: str) -> None:
        """Give up this store's claim on ``key`` (one taken over meanwhile stays with its new holder)."""
        await self.database.execute("DELETE FROM claims WHERE key = ? AND holder = ?", [key, self.holder])

    # -- files -----------------------------------------------------------------------

    async def find_upload(self, sha256: str) -> FileRecord | None:
        """The live Files API upload of this content, if we made one."""
        row = await self.database.fetchone(
            "SELECT * FROM files WHERE sha256 = ? AND origin = 'upload' AND deleted_at IS NULL "
            "ORDER BY created_at DESC LIMIT 1",
            [sha256],
        )
        return _file_record(row) if row else None

    async def record_file(
        self,
        *,
        file_id: str,
        origin: FileOrigin,
        filename: str,
        mime_type: str,
        size_bytes: int,
        sha256: str | None = None,
        team_id: str | None = None,
        user_id: str | None = None,
        run_id: int | None = None,
    ) -> None:
        row = {
            "id": file_id,
            "sha256": sha256,
            "origin": origin,
            "filename": filename,
            "mime_type": mime_type,
            "size_bytes": size_bytes,
            "team_id": team_id,
            "user_id": user_id,
            "run_id": run_id,
            "created_at": self.now(),
            "deleted_at": None,
        }
        sql, params = upsert("files", row, key=("id",))
        await self.database.execute(sql, params)

    async def file_is_live(self, file_id: str) -> bool:
        """True while the file is recorded and not yet deleted."""
        row = await self.database.fetchone("SELECT id FROM files WHERE id = ? AND deleted_at IS NULL", [file_id])
        return row is not None

    async def mark_file_deleted(self, file_id: str) -> None:
        await self.database.execute("UPDATE files SET deleted_at = ? WHERE id = ?", [self.now(), file_id])

    async def live_files_of_user(self, user_id: str) -> list[dict[str, Any]]:
        """Files API files a person uploaded, or that their analyses generated, not yet deleted."""
        return await self.database.fetch(
            "SELECT * FROM files WHERE deleted_at IS NULL AND "
            "(user_id = ? OR run_id IN (SELECT id FROM runs WHERE user_id = ?)) ORDER BY created_at",
            [user_id, user_id],
        )

    async def files(self) -> list[dict[str, Any]]:
        return await self.database.fetch("SELECT * FROM files ORDER BY created_at, id")

    # -- runs ------------------------------------------------------------------------

    async def create_run(self, *, source: RunSource, status: RunStatus = "queued", **fields: Any) -> int:
        """Insert a run and return its id."""
        row = {"source": source, "status": status, "started_at": self.now(), **fields}
        _check_run_fields(row)
        return await insert_run(self.database, row)

    async def admit(
        self, *, limits: Limits, exempt: bool, source: RunSource, lease_s: float | None = None, **fields: Any
    ) -> tuple[int, Refusal | None]:
        """Record a new run, ``queued`` if the quotas allow it, else ``refused``: atomically.

        Counting the ledger and inserting the run happen in one transaction that holds the
        person's and the workspace's locks (see :func:`admit_run`), so concurrent requests —
        from this process or another — can never both take the last slot.
        """
        fields = {"source": source, **fields}
        _check_run_fields(fields)
        now = self.clock()
        if lease_s is not None:  # the admitting process carries it out (see bot/leases.py)
            fields.update(owner=self.owner, lease_until=utc_iso(now + lease_s))
        async with self.database.transaction() as tx:
            return await admit_run(tx, now, limits, exempt, fields)

    async def update_run(self, run_id: int, *, status: RunStatus | None = None, **fields: Any) -> None:
        """Set a run's columns; a terminal ``status`` also stamps ``finished_at`` (unless given)."""
        if status is not None:
            fields["status"] = status
            if status in TERMINAL_STATUSES:
                fields.setdefault("finished_at", self.now())
        _check_run_fields(fields)
        if not fields:
            return
        assignments = ", ".join(f"{column} = ?" for column in fields)
        await self.database.execute(
            f"UPDATE runs SET {assignments} WHERE id = ?",  # noqa: S608 - checked column names
            [*fields.values(), run_id],
        )

    # -- leases (bot/leases.py): which process carries out a run, which holds a thread ------

    async def renew_leases(self, lease_s: float) -> int:
        """Extend the lease of this process's unfinished runs and thread locks; returns how many runs."""
        until = utc_iso(self.clock() + lease_s)
        async with self.database.transaction() as tx:
            renewed = await tx.execute(
                f"UPDATE runs SET lease_until = ? WHERE owner = ? AND status IN ({_UNFINISHED})",  # noqa: S608
                [until, self.owner, *UNFINISHED_STATUSES],
            )
            await tx.execute("UPDATE thread_locks SET lease_until = ? WHERE owner = ?", [until, self.owner])
        return renewed

    async def runs_to_take_over(self) -> list[dict[str, Any]]:
        """Unfinished runs another process may take: unowned, their lease expired, or their owner gone."""
        rows = await self._runs_where(
            f"status IN ({_UNFINISHED}) AND (owner IS NULL OR owner != ?)", [*UNFINISHED_STATUSES, self.owner]
        )
        now = self.now()
        return [row for row in rows if leases.takeable(row["owner"], row["lease_until"], now)]

    async def take_over_run(self, run_id: int, *, lease_s: float, gone_owner: str | None = None) -> bool:
        """Make run ``run_id`` this process's, if it is still unfinished and unowned, its lease
        expired, or still owned by ``gone_owner`` (seen to have exited): one compare-and-set, so
        of several processes trying at once exactly one wins."""
        now = self.clock()
        won = await self.database.fetchone(
            f"UPDATE runs SET owner = ?, lease_until = ? WHERE id = ? AND status IN ({_UNFINISHED}) "  # noqa: S608
            "AND (owner IS NULL OR lease_until IS NULL OR lease_until < ? OR owner = ?) RETURNING id",
            [self.owner, utc_iso(now + lease_s), run_id, *UNFINISHED_STATUSES, utc_iso(now), gone_owner],
        )
        return won is not None

    async def hand_back_runs(self) -> int:
        """Leave this process's unfinished runs unowned (another process takes them at once) and
        release its thread locks; returns how many runs."""
        async with self.database.transaction() as tx:
            handed = await tx.execute(
                f"UPDATE runs SET owner = NULL, lease_until = NULL WHERE owner = ? AND status IN ({_UNFINISHED})",  # noqa: S608
                [self.owner, *UNFINISHED_STATUSES],
            )
            await tx.execute("DELETE FROM thread_locks WHERE owner = ?", [self.owner])
        return handed

    async def request_stop(self, run_id: int, by: str) -> bool:
        """Record that ``by`` asked to stop run ``run_id`` (for its owner to act on); False if it
        has finished meanwhile."""
        changed = await self.database.execute(
            f"UPDATE runs SET stop_requested_by = ? WHERE id = ? AND status IN ({_UNFINISHED})",  # noqa: S608
            [by, run_id, *UNFINISHED_STATUSES],
        )
        return changed > 0

    async def stops_requested(self) -> list[tuple[int, str]]:
        """(run id, who asked) of this process's unfinished runs someone asked to stop elsewhere."""
        rows = await self._runs_where(
            f"owner = ? AND status IN ({_UNFINISHED}) AND stop_requested_by IS NOT NULL",
            [self.owner, *UNFINISHED_STATUSES],
        )
        return [(int(row["id"]), str(row["stop_requested_by"])) for row in rows]

    async def take_thread_lock(
        self, key: str, *, run_id: int | None, lease_s: float, gone_owner: str | None = None
    ) -> bool:
        """Hold thread ``key`` for this process: True if it was free, its lease expired, or its
        holder is ``gone_owner`` (one statement: exactly one of several racing processes wins)."""
        now = self.clock()
        won = await self.database.fetchone(
            "INSERT INTO thread_locks (thread_key, owner, run_id, lease_until) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (thread_key) DO UPDATE SET owner = excluded.owner, run_id = excluded.run_id, "
            "lease_until = excluded.lease_until WHERE thread_locks.lease_until < ? OR thread_locks.owner = ? "
            "RETURNING thread_key",
            [key, self.owner, run_id, utc_iso(now + lease_s), utc_iso(now), gone_owner],
        )
        return won is not None

    async def thread_lock_holder(self, key: str) -> str | None:
        row = await self.database.fetchone("SELECT owner FROM thread_locks WHERE thread_key = ?", [key])
        return str(row["owner"]) if row and row["owner"] is not None else None

    async def release_thread_lock(self, key: str) -> None:
        """Give up this process's lock on thread ``key`` (one taken over meanwhile stays with its new holder)."""
        await self.database.execute("DELETE FROM thread_locks WHERE thread_key = ? AND owner = ?", [key, self.owner])

    # -- what the bot posted (for deleting a run's replies) -------------------------

    async def record_post(self, *, channel_id: str, ref: str, kind: PostKind, run_id: int) -> None:
        if kind not in POST_KINDS:
            raise ValueError(f"unknown post kind {kind!r}")
        row = {"channel_id": channel_id, "ref": ref, "kind": kind, "run_id": run_id, "posted_at": self.now()}
        sql, params = upsert("posts", row, key=("channel_id", "ref"))
        await self.database.execute(sql, params)

    async def run_of_post(self, channel_id: str, ref: str) -> int | None:
        row = await self.database.fetchone(
            "SELECT run_id FROM posts WHERE channel_id = ? AND ref = ?", [channel_id, ref]
        )
        return int(row["run_id"]) if row else None

    async def posts_of_run(self, run_id: int) -> list[dict[str, Any]]:
        return await self.database.fetch(
            "SELECT * FROM posts WHERE run_id = ? ORDER BY posted_at, channel_id, ref", [run_id]
        )

    async def forget_posts(self, run_id: int) -> None:
        await self.database.execute("DELETE FROM posts WHERE run_id = ?", [run_id])

    # -- retention ----------------------------------------------------------------

    async def files_created_before(self, moment: str) -> list[dict[str, Any]]:
        """Files API files (ours and generated) older than ``moment`` and not yet deleted."""
        return await self.database.fetch(
            "SELECT * FROM files WHERE deleted_at IS NULL AND created_at < ? ORDER BY created_at, id", [moment]
        )

    async def prune(
        self, *, events_before: str, shares_before: str, posts_before: str, claims_before: str | None = None
    ) -> None:
        """Forget bookkeeping no longer needed: old dedupe keys, shares, post records and claims
        their holders never gave up (they crashed)."""
        async with self.database.transaction() as tx:
            await tx.execute("DELETE FROM events WHERE received_at < ?", [events_before])
            await tx.execute("DELETE FROM shares WHERE shared_at < ?", [shares_before])
            await tx.execute("DELETE FROM posts WHERE posted_at < ?", [posts_before])
            if claims_before is not None:
                await tx.execute("DELETE FROM claims WHERE claimed_at < ?", [claims_before])

    async def get_run(self, run_id: int) -> dict[str, Any]:
        run = await self.find_run(run_id)
        if run is None:
            raise LookupError(f"no run {run_id}")
        return run

    async def find_run(self, run_id: int) -> dict[str, Any] | None:
        """The run, or None if there is no such run (an id from a button, say)."""
        rows = await self._runs_where("id = ?", [run_id])
        return rows[0] if rows else None

    async def _runs_where(self, where: str | None, params: list[Any]) -> list[dict[str, Any]]:
        clause = f" WHERE {where}" if where else ""
        return await self.database.fetch(f"SELECT * FROM runs{clause} ORDER BY id", params)  # noqa: S608 - fixed

    async def all_runs(self) -> list[dict[str, Any]]:
        """Every run in the ledger, oldest first."""
        return await self._runs_where(None, [])

    async def unfinished_runs(self) -> list[dict[str, Any]]:
        """Runs still ``queued`` or ``running`` (after a restart: the ones a previous process left)."""
        marks = ", ".join("?" for _ in UNFINISHED_STATUSES)
        return await self._runs_where(f"status IN ({marks})", list(UNFINISHED_STATUSES))

    async def admitted_runs_of_user_since(self, user_id: str, since: str) -> list[dict[str, Any]]:
        """The person's runs started at or after ``since`` that were admitted (not ``refused``)."""
        return await self._runs_where("user_id = ? AND started_at >= ? AND status != 'refused'", [user_id, since])

    async def admitted_runs_of_team_since(self, team_id: str, since: str) -> list[dict[str, Any]]:
        """The workspace's runs started at or after ``since`` that were admitted (not ``refused``)."""
        return await self._runs_where("team_id = ? AND started_at >= ? AND status != 'refused'", [team_id, since])

    async def latest_runs_of_user(self, user_id: str, limit: int) -> list[dict[str, Any]]:
        """The person's ``limit`` most recent admitted runs (not ``refused``), newest first."""
        return await self.database.fetch(
            "SELECT * FROM runs WHERE user_id = ? AND status != 'refused' ORDER BY id DESC LIMIT ?", [user_id, limit]
        )

    async def count_runs(self) -> int:
        row = await self.database.fetchone("SELECT COUNT(*) AS n FROM runs")
        return int(row["n"]) if row else 0

    async def schema_state(self) -> SchemaState:
        """Which migrations this database has had (``Store.open`` applies every pending one)."""
        return await database_schema_state(self.database)

    async def runs_since(self, since: str) -> list[dict[str, Any]]:
        """Every run started at or after ``since`` (refused ones too), oldest first, each with
        ``feedback_good`` and ``feedback_bad``: how many people rated its answer 👍 and 👎."""
        sql = (
            "SELECT runs.*, COALESCE(rated.good, 0) AS feedback_good, COALESCE(rated.bad, 0) AS feedback_bad "
            "FROM runs LEFT JOIN (SELECT run_id, SUM(CASE WHEN rating = 'good' THEN 1 ELSE 0 END) AS good, "
            "SUM(CASE WHEN rating = 'bad' THEN 1 ELSE 0 END) AS bad "
            "FROM feedback GROUP BY run_id) AS rated ON rated.run_id = runs.id "
            "WHERE runs.started_at >= ? ORDER BY runs.id"
        )
        return await self.database.fetch(sql, [since])


def upsert(table: str, row: dict[str, Any], *, key: tuple[str, ...], update: bool = True) -> tuple[str, list[Any]]:
    """``INSERT`` of ``row``, or — when a row with the same ``key`` exists — an update of the
    columns ``row`` gives (the others keep their values), or nothing if not ``update``."""
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    updates = ", ".join(f"{column} = excluded.{column}" for column in row if column not in key)
    action = f"DO UPDATE SET {updates}" if updates and update else "DO NOTHING"
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) {action}"  # noqa: S608
    return sql, list(row.values())


async def insert_run(queries: Queries, row: dict[str, Any]) -> int:
    """Insert a ``runs`` row (its columns checked by the caller); returns its id."""
    columns = ", ".join(row)
    inserted = await queries.fetchone(
        f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' for _ in row)}) RETURNING id",  # noqa: S608 - known columns
        list(row.values()),
    )
    assert inserted is not None  # INSERT … RETURNING returns the row it inserted
    return int(inserted["id"])


async def admit_run(
    tx: Queries, now: float, limits: Limits, exempt: bool, fields: dict[str, Any]
) -> tuple[int, Refusal | None]:
    """Count the ledger and insert the run, inside the transaction ``tx``.

    The transaction first takes the person's and the workspace's locks (``BEGIN IMMEDIATE``
    already excludes every other writer on SQLite; on PostgreSQL, transaction-scoped advisory
    locks), so the counts it reads cannot change before its row is in. The counts are sums
    (:func:`usage_totals`); only a request that reaches a limit reads the runs themselves, whose
    start times say when capacity frees.
    """
    user_id, team_id = fields.get("user_id"), fields.get("team_id")
    await lock(tx, f"admit:user:{user_id}", f"admit:team:{team_id}")
    refusal = None
    if limit_reached(await usage_totals(tx, user_id, team_id, now), limits, exempt=exempt) is not None:
        refusal = check(await ledger_state(tx, user_id, team_id, now), limits, now=now, exempt=exempt)
    row = {**fields, "started_at": utc_iso(now), "status": "refused" if refusal else "queued"}
    if refusal is not None:
        row.update(finished_at=row["started_at"], error=f"{refusal.limit}: {refusal.message}")
    return await insert_run(tx, row), refusal


# The tokens of one run, as quotas.tokens_used counts them (every input token, cached or not).
_RUN_TOKENS = (
    "(COALESCE(input_tokens, 0) + COALESCE(cache_read_tokens, 0) + COALESCE(cache_write_tokens, 0) "
    "+ COALESCE(output_tokens, 0))"
)
# A run whose lease expired (its process is gone) no longer holds a slot; an unowned one does
# (it is waiting for a process to take it).
_HOLDS_A_SLOT = (
    "user_id = ? AND status IN ('queued', 'running') AND (owner IS NULL OR lease_until IS NULL OR lease_until >= ?)"
)


async def usage_totals(tx: Queries, user_id: Any, team_id: Any, now: float) -> Totals:
    """The quotas' counts for a person and their workspace as of ``now``, summed in the database
    (one statement, however long the ledger)."""
    day_ago, hour_ago = utc_iso(now - DAY), utc_iso(now - HOUR)
    admitted = "started_at >= ? AND status != 'refused'"
    row = await tx.fetchone(
        f"SELECT (SELECT COALESCE(SUM({_RUN_TOKENS}), 0) FROM runs WHERE user_id = ? AND {admitted}) AS user_tokens, "  # noqa: S608 - fixed SQL
        f"(SELECT COUNT(*) FROM runs WHERE user_id = ? AND {admitted}) AS runs_last_hour, "
        f"(SELECT COUNT(*) FROM runs WHERE {_HOLDS_A_SLOT}) AS active, "
        f"(SELECT COALESCE(SUM({_RUN_TOKENS}), 0) FROM runs WHERE team_id = ? AND {admitted}) AS workspace_tokens",
        [user_id, day_ago, user_id, hour_ago, user_id, utc_iso(now), team_id, day_ago],
    )
    assert row is not None  # a SELECT without FROM returns one row
    return Totals(
        runs_last_hour=int(row["runs_last_hour"]),
        active=int(row["active"]),
        user_tokens=int(row["user_tokens"]),
        workspace_tokens=int(row["workspace_tokens"]),
    )


async def ledger_state(tx: Queries, user_id: Any, team_id: Any, now: float) -> LedgerState:
    """The runs behind :func:`usage_totals`, with their start times (to say when capacity frees)."""
    day_ago = utc_iso(now - DAY)
    mine = await _tokens_since(tx, "user_id", user_id, day_ago)
    active = await tx.fetchone(f"SELECT COUNT(*) AS n FROM runs WHERE {_HOLDS_A_SLOT}", [user_id, utc_iso(now)])  # noqa: S608 - fixed SQL
    return LedgerState(
        run_starts=[started for started, _ in mine if started >= now - HOUR],
        active=int(active["n"]) if active else 0,
        user_tokens=mine,
        workspace_tokens=await _tokens_since(tx, "team_id", team_id, day_ago),
    )


async def _tokens_since(tx: Queries, column: str, value: Any, since: str) -> list[tuple[float, int]]:
    """(start, tokens used) of the admitted runs with ``column = value`` started since ``since``."""
    rows = await tx.fetch(
        f"SELECT started_at, {USAGE_COUNT_COLUMNS} FROM runs "  # noqa: S608 - fixed column names
        f"WHERE {column} = ? AND started_at >= ? AND status != 'refused'",
        [value, since],
    )
    return [(parse_iso(row["started_at"]), run_tokens(row)) for row in rows]


_UNFINISHED = ", ".join("?" for _ in UNFINISHED_STATUSES)


def _check_run_fields(fields: dict[str, Any]) -> None:
    """Refuse columns the ledger lacks and values its text columns can't hold (callers pass ``Any``)."""
    unknown = set(fields) - set(RUN_COLUMNS)
    if unknown:
        raise ValueError(f"unknown run columns: {sorted(unknown)}")
    if "status" in fields and fields["status"] not in RUN_STATUSES:
        raise ValueError(f"unknown run status {fields['status']!r}")
    if "source" in fields and fields["source"] not in RUN_SOURCES:
        raise ValueError(f"unknown run source {fields['source']!r}")


def _file_record(row: dict[str, Any]) -> FileRecord:
    return FileRecord(
        id=row["id"],
        sha256=row["sha256"],
        origin=row["origin"],
        filename=row["filename"],
        mime_type=row["mime_type"],
        size_bytes=row["size_bytes"],
    )


@dataclass(frozen=True)
class ThreadFile:
    """A file that belongs to a conversation (in every container it runs in)."""

    sha256: str
    file_id: str
    slack_file_id: str | None
    filename: str
    kind: str
    size_bytes: int
    # The header of a CSV/TSV read at intake (not stored: only the run that brought it in uses it).
    columns: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Conversation:
    """A thread the bot has answered in: its container, its files and its turns."""

    key: str
    user_id: str | None
    container_id: str | None
    container_expires_at: str | None
    files: tuple[ThreadFile, ...]
    turns: tuple[dict[str, Any], ...]  # {"role", "content", "model"}


class ConversationStore:
    """Conversations on top of a :class:`Store` (the same database)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def database(self) -> Database:
        return self.store.database

    async def get(self, key: str) -> Conversation | None:
        async with self.database.transaction() as tx:  # one consistent read of the three tables
            thread = await tx.fetchone("SELECT * FROM threads WHERE key = ?", [key])
            if thread is None:
                return None
            file_rows = await tx.fetch("SELECT * FROM thread_files WHERE thread_key = ? ORDER BY added_at", [key])
            turn_rows = await tx.fetch("SELECT * FROM turns WHERE thread_key = ? ORDER BY id", [key])
        files = tuple(
            ThreadFile(
                sha256=row["sha256"],
                file_id=row["file_id"],
                slack_file_id=row["slack_file_id"],
                filename=row["filename"],
                kind=row["kind"],
                size_bytes=row["size_bytes"],
            )
            for row in file_rows
        )
        turns = tuple(
            {"role": row["role"], "content": json.loads(row["content"]), "model": row["model"]} for row in turn_rows
        )
        return Conversation(
            key=key,
            user_id=thread["user_id"],
            container_id=thread["container_id"],
            container_expires_at=thread["container_expires_at"],
            files=files,
            turns=turns,
        )

    async def ensure(
        self, key: str, *, team_id: str, channel_id: str, thread_ts: str, user_id: str, source: RunSource
    ) -> None:
        """Create the conversation if it doesn't exist yet (the first asker owns it)."""
        now = self.store.now()
        row = {
            "key": key,
            "team_id": team_id,
            "channel_id": channel_id,
            "thread_ts": thread_ts,
            "user_id": user_id,
            "source": source,
            "container_id": None,
            "container_expires_at": None,
            "created_at": now,
            "updated_at": now,
        }
        sql, params = upsert("threads", row, key=("key",), update=False)
        await self.database.execute(sql, params)

    async def add_file(self, key: str, file: ThreadFile) -> None:
        row = {
            "thread_key": key,
            "sha256": file.sha256,
            "file_id": file.file_id,
            "slack_file_id": file.slack_file_id,
            "filename": file.filename,
            "kind": file.kind,
            "size_bytes": file.size_bytes,
            "added_at": self.store.now(),
        }
        sql, params = upsert("thread_files", row, key=("thread_key", "sha256"))
        await self.database.execute(sql, params)

    async def record_exchange(
        self,
        key: str,
        *,
        run_id: int,
        model: str,
        user_content: list[dict[str, Any]],
        assistant_content: list[dict[str, Any]],
        container_id: str | None,
        container_expires_at: str | None,
    ) -> None:
        """Append one question and its answer, and remember the container they ran in."""
        now = self.store.now()
        async with self.database.transaction() as tx:
            for role, content in (("user", user_content), ("assistant", assistant_content)):
                await tx.execute(
                    "INSERT INTO turns (thread_key, run_id, role, content, model, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [key, run_id, role, json.dumps(content), model, now],
                )
            await tx.execute(
                "UPDATE threads SET container_id = ?, container_expires_at = ?, updated_at = ? WHERE key = ?",
                [container_id, container_expires_at, now, key],
            )

    async def file_names(self, keys: Iterable[str]) -> dict[str, list[str]]:
        """The names of each conversation's files (by thread key), oldest first; [] for none."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        names: dict[str, list[str]] = {key: [] for key in wanted}
        marks = ", ".join("?" for _ in wanted)
        rows = await self.database.fetch(
            f"SELECT thread_key, filename FROM thread_files WHERE thread_key IN ({marks}) "  # noqa: S608 - placeholders
            "ORDER BY added_at",
            wanted,
        )
        for row in rows:
            names[row["thread_key"]].append(row["filename"])
        return names

    async def forget_container(self, key: str) -> None:
        await self.database.execute(
            "UPDATE threads SET container_id = NULL, container_expires_at = NULL WHERE key = ?", [key]
        )

    async def delete_idle_since(self, moment: str) -> int:
        """Delete conversations untouched since ``moment``; returns how many."""
        return await self._delete_where("updated_at < ?", [moment])

    async def _delete_where(self, where: str, params: list[Any]) -> int:
        async with self.database.transaction() as tx:
            keys = [row["key"] for row in await tx.fetch(f"SELECT key FROM threads WHERE {where}", params)]  # noqa: S608
            for key in keys:
                await tx.execute("DELETE FROM turns WHERE thread_key = ?", [key])
                await tx.execute("DELETE FROM thread_files WHERE thread_key = ?", [key])
                await tx.execute("DELETE FROM threads WHERE key = ?", [key])
        return len(keys)

    async def delete_for_user(self, user_id: str) -> int:
        """Delete every conversation ``user_id`` started; returns how many."""
        return await self._delete_where("user_id = ?", [user_id])

    # -- files people share (for /analyze without a link) --------------------------------

    async def record_share(self, *, team_id: str, channel_id: str, user_id: str, slack_file_id: str) -> None:
        """Remember that ``user_id`` shared a file in ``channel_id`` (the latest share wins)."""
        sql = (
            "INSERT INTO shares (team_id, channel_id, user_id, slack_file_id, shared_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (channel_id, user_id, slack_file_id) DO UPDATE SET shared_at = excluded.shared_at"
        )
        await self.database.execute(sql, [team_id, channel_id, user_id, slack_file_id, self.store.now()])

    async def recent_shares(
        self, *, channel_id: str, user_id: str, since: str, batch_seconds: float = 120
    ) -> list[str]:
        """Slack file ids of the user's most recent share in the channel (one batch), newest first."""
        rows = await self.database.fetch(
            "SELECT slack_file_id, shared_at FROM shares WHERE channel_id = ? AND user_id = ? AND shared_at >= ? "
            "ORDER BY shared_at DESC",
            [channel_id, user_id, since],
        )
        if not rows:
            return []
        newest = parse_iso(rows[0]["shared_at"])
        return [r["slack_file_id"] for r in rows if newest - parse_iso(r["shared_at"]) <= batch_seconds]


def parse_iso(value: str) -> float:
    """A stored timestamp (:func:`utc_iso`) as seconds since the epoch."""
    return datetime.fromisoformat(value).timestamp()
