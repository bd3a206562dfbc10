"""The bot's SQLite store: seen events, uploaded files and the run ledger.

One :class:`Store` owns one connection, used only from its own worker thread, so every
read and write is serialised through a single path (no ``database is locked`` within a
process) while the event loop never blocks on disk. The database runs in WAL mode with a
busy timeout so a second process (the CLI, say) can read alongside.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import sqlite_utils

from bot.progress import Usage
from bot.quotas import DAY, HOUR, LedgerState, Limits, Refusal, check, run_tokens
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
    migrate,
    schema_state,
)

T = TypeVar("T")


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
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class FileRecord:
    id: str
    sha256: str | None
    origin: FileOrigin
    filename: str
    mime_type: str
    size_bytes: int


class Store:
    """Async façade over a sqlite-utils database running on one worker thread."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] | None = None) -> None:
        import time

        self.path = Path(path)
        self.clock = clock or time.time
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._db: sqlite_utils.Database | None = None

    # -- plumbing --------------------------------------------------------------------

    async def open(self) -> Store:
        await self.call(self._open)
        return self

    async def close(self) -> None:
        if self._db is not None:
            await self.call(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> Store:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def db(self) -> sqlite_utils.Database:
        if self._db is None:
            raise RuntimeError("Store is not open")
        return self._db

    def now(self) -> str:
        return utc_iso(self.clock())

    def _open(self) -> None:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        db = sqlite_utils.Database(conn)
        if str(self.path) != ":memory:":
            db.enable_wal()
        try:
            migrate(db)  # create the schema, or bring an older database up to it
        except BaseException:
            conn.close()
            raise
        self._db = db

    # -- events ----------------------------------------------------------------------

    async def claim(self, key: str) -> bool:
        """Record ``key`` as seen. True the first time only, atomically."""
        return await self.call(self._claim, key)

    def _claim(self, key: str) -> bool:
        cursor = self.db.execute("INSERT OR IGNORE INTO events (key, received_at) VALUES (?, ?)", [key, self.now()])
        return cursor.rowcount == 1

    # -- files -----------------------------------------------------------------------

    async def find_upload(self, sha256: str) -> FileRecord | None:
        """The live Files API upload of this content, if we made one."""
        return await self.call(self._find_upload, sha256)

    def _find_upload(self, sha256: str) -> FileRecord | None:
        rows = list(
            self.db.table("files").rows_where(
                "sha256 = ? AND origin = 'upload' AND deleted_at IS NULL",
                [sha256],
                order_by="created_at DESC",
                limit=1,
            )
        )
        return _file_record(rows[0]) if rows else None

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
        await self.call(lambda: self.db.table("files").upsert(row, pk="id"))

    async def mark_file_deleted(self, file_id: str) -> None:
        await self.call(lambda: self.db.table("files").update(file_id, {"deleted_at": self.now()}))

    async def live_files_of_user(self, user_id: str) -> list[dict[str, Any]]:
        """Files API files a person uploaded, or that their analyses generated, not yet deleted."""
        return await self.call(
            lambda: list(
                self.db.query(
                    "SELECT * FROM files WHERE deleted_at IS NULL AND "
                    "(user_id = ? OR run_id IN (SELECT id FROM runs WHERE user_id = ?)) ORDER BY created_at",
                    [user_id, user_id],
                )
            )
        )

    async def files(self) -> list[dict[str, Any]]:
        return await self.call(lambda: list(self.db.table("files").rows))

    # -- runs ------------------------------------------------------------------------

    async def create_run(self, *, source: RunSource, status: RunStatus = "queued", **fields: Any) -> int:
        """Insert a run and return its id."""
        row = {"source": source, "status": status, "started_at": self.now(), **fields}
        _check_run_fields(row)

        def insert() -> int:
            table = self.db.table("runs")
            table.insert(row)
            return int(table.last_pk or 0)

        return await self.call(insert)

    async def admit(
        self, *, limits: Limits, exempt: bool, source: RunSource, **fields: Any
    ) -> tuple[int, Refusal | None]:
        """Record a new run, ``queued`` if the quotas allow it, else ``refused``: atomically.

        Counting the ledger and inserting the run happen in one ``BEGIN IMMEDIATE``
        transaction, so concurrent requests (from this process or another) can never
        both take the last slot.
        """
        fields = {"source": source, **fields}
        _check_run_fields(fields)
        return await self.call(self._admit, limits, exempt, fields)

    def _admit(self, limits: Limits, exempt: bool, fields: dict[str, Any]) -> tuple[int, Refusal | None]:
        return admit_run(self.db.conn, self.clock(), limits, exempt, fields)

    async def update_run(self, run_id: int, *, status: RunStatus | None = None, **fields: Any) -> None:
        """Set a run's columns; a terminal ``status`` also stamps ``finished_at`` (unless given)."""
        if status is not None:
            fields["status"] = status
            if status in TERMINAL_STATUSES:
                fields.setdefault("finished_at", self.now())
        _check_run_fields(fields)
        await self.call(lambda: self.db.table("runs").update(run_id, fields))

    # -- what the bot posted (for deleting a run's replies) -------------------------

    async def record_post(self, *, channel_id: str, ref: str, kind: PostKind, run_id: int) -> None:
        if kind not in POST_KINDS:
            raise ValueError(f"unknown post kind {kind!r}")
        row = {"channel_id": channel_id, "ref": ref, "kind": kind, "run_id": run_id, "posted_at": self.now()}
        await self.call(lambda: self.db.table("posts").upsert(row, pk=("channel_id", "ref")))

    async def run_of_post(self, channel_id: str, ref: str) -> int | None:
        rows = await self.call(
            lambda: list(self.db.table("posts").rows_where("channel_id = ? AND ref = ?", [channel_id, ref]))
        )
        return int(rows[0]["run_id"]) if rows else None

    async def posts_of_run(self, run_id: int) -> list[dict[str, Any]]:
        return await self.call(lambda: list(self.db.table("posts").rows_where("run_id = ?", [run_id])))

    async def forget_posts(self, run_id: int) -> None:
        await self.call(lambda: self.db.execute("DELETE FROM posts WHERE run_id = ?", [run_id]))

    # -- retention ----------------------------------------------------------------

    async def files_created_before(self, moment: str) -> list[dict[str, Any]]:
        """Files API files (ours and generated) older than ``moment`` and not yet deleted."""
        return await self.call(
            lambda: list(self.db.table("files").rows_where("deleted_at IS NULL AND created_at < ?", [moment]))
        )

    async def prune(self, *, events_before: str, shares_before: str, posts_before: str) -> None:
        """Forget bookkeeping no longer needed: old dedupe keys, shares and post records."""

        def prune() -> None:
            with self.db.conn:
                self.db.execute("DELETE FROM events WHERE received_at < ?", [events_before])
                self.db.execute("DELETE FROM shares WHERE shared_at < ?", [shares_before])
                self.db.execute("DELETE FROM posts WHERE posted_at < ?", [posts_before])

        await self.call(prune)

    async def get_run(self, run_id: int) -> dict[str, Any]:
        return await self.call(lambda: dict(self.db.table("runs").get(run_id)))

    async def find_run(self, run_id: int) -> dict[str, Any] | None:
        """The run, or None if there is no such run (an id from a button, say)."""
        rows = await self._runs_where("id = ?", [run_id])
        return rows[0] if rows else None

    async def _runs_where(self, where: str | None, params: list[Any]) -> list[dict[str, Any]]:
        return await self.call(lambda: list(self.db.table("runs").rows_where(where, params, order_by="id")))

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
        return await self.call(
            lambda: list(
                self.db.table("runs").rows_where(
                    "user_id = ? AND status != 'refused'", [user_id], order_by="id DESC", limit=limit
                )
            )
        )

    async def count_runs(self) -> int:
        return await self.call(lambda: self.db.table("runs").count)

    async def schema_state(self) -> SchemaState:
        """Which migrations this database has had (``Store.open`` applies every pending one)."""
        return await self.call(schema_state, self.db)

    async def runs_since(self, since: str) -> list[dict[str, Any]]:
        """Every run started at or after ``since`` (refused ones too), oldest first, each with
        ``feedback_good`` and ``feedback_bad``: how many people rated its answer 👍 and 👎."""
        sql = (
            "SELECT runs.*, COALESCE(rated.good, 0) AS feedback_good, COALESCE(rated.bad, 0) AS feedback_bad "
            "FROM runs LEFT JOIN (SELECT run_id, SUM(rating = 'good') AS good, SUM(rating = 'bad') AS bad "
            "FROM feedback GROUP BY run_id) AS rated ON rated.run_id = runs.id "
            "WHERE runs.started_at >= ? ORDER BY runs.id"
        )
        return await self.call(lambda: list(self.db.query(sql, [since])))


def admit_run(
    conn: sqlite3.Connection, now: float, limits: Limits, exempt: bool, fields: dict[str, Any]
) -> tuple[int, Refusal | None]:
    """Count the ledger and insert the run in one ``BEGIN IMMEDIATE`` transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        day_ago = utc_iso(now - DAY)
        mine = _tokens_since(conn, "user_id", fields.get("user_id"), day_ago)
        active = conn.execute(
            "SELECT COUNT(*) FROM runs WHERE user_id = ? AND status IN ('queued', 'running')",
            [fields.get("user_id")],
        ).fetchone()[0]
        usage = LedgerState(
            run_starts=[started for started, _ in mine if started >= now - HOUR],
            active=active,
            user_tokens=mine,
            workspace_tokens=_tokens_since(conn, "team_id", fields.get("team_id"), day_ago),
        )
        refusal = check(usage, limits, now=now, exempt=exempt)
        row = {**fields, "started_at": utc_iso(now), "status": "refused" if refusal else "queued"}
        if refusal is not None:
            row.update(finished_at=row["started_at"], error=f"{refusal.limit}: {refusal.message}")
        columns = ", ".join(row)
        cursor = conn.execute(
            f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' for _ in row)})",  # noqa: S608 - known columns
            list(row.values()),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(cursor.lastrowid or 0), refusal


def _tokens_since(conn: sqlite3.Connection, column: str, value: Any, since: str) -> list[tuple[float, int]]:
    """(start, tokens used) of the admitted runs with ``column = value`` started since ``since``."""
    cursor = conn.execute(
        f"SELECT started_at, {USAGE_COUNT_COLUMNS} FROM runs "  # noqa: S608 - fixed column names
        f"WHERE {column} = ? AND started_at >= ? AND status != 'refused'",
        [value, since],
    )
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    return [(parse_iso(row["started_at"]), run_tokens(row)) for row in rows]


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
    """Conversations on top of a :class:`Store` (same database, same worker thread)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def db(self) -> sqlite_utils.Database:
        return self.store.db

    async def get(self, key: str) -> Conversation | None:
        return await self.store.call(self._get, key)

    def _get(self, key: str) -> Conversation | None:
        rows = list(self.db.table("threads").rows_where("key = ?", [key]))
        if not rows:
            return None
        thread = rows[0]
        files = tuple(
            ThreadFile(
                sha256=row["sha256"],
                file_id=row["file_id"],
                slack_file_id=row["slack_file_id"],
                filename=row["filename"],
                kind=row["kind"],
                size_bytes=row["size_bytes"],
            )
            for row in self.db.table("thread_files").rows_where("thread_key = ?", [key], order_by="added_at")
        )
        turns = tuple(
            {"role": row["role"], "content": json.loads(row["content"]), "model": row["model"]}
            for row in self.db.table("turns").rows_where("thread_key = ?", [key], order_by="id")
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
        await self.store.call(lambda: self.db.table("threads").insert(row, ignore=True))

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
        await self.store.call(lambda: self.db.table("thread_files").upsert(row, pk=("thread_key", "sha256")))

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

        def write() -> None:
            with self.db.conn:
                turns = self.db.table("turns")
                for role, content in (("user", user_content), ("assistant", assistant_content)):
                    turns.insert(
                        {
                            "thread_key": key,
                            "run_id": run_id,
                            "role": role,
                            "content": json.dumps(content),
                            "model": model,
                            "created_at": now,
                        }
                    )
                self.db.table("threads").update(
                    key,
                    {"container_id": container_id, "container_expires_at": container_expires_at, "updated_at": now},
                )

        await self.store.call(write)

    async def file_names(self, keys: Iterable[str]) -> dict[str, list[str]]:
        """The names of each conversation's files (by thread key), oldest first; [] for none."""
        wanted = list(dict.fromkeys(keys))

        def query() -> dict[str, list[str]]:
            names: dict[str, list[str]] = {key: [] for key in wanted}
            marks = ", ".join("?" for _ in wanted)
            rows = self.db.query(
                f"SELECT thread_key, filename FROM thread_files WHERE thread_key IN ({marks}) "  # noqa: S608 - placeholders
                "ORDER BY added_at",
                wanted,
            )
            for row in rows:
                names[row["thread_key"]].append(row["filename"])
            return names

        return await self.store.call(query) if wanted else {}

    async def forget_container(self, key: str) -> None:
        await self.store.call(
            lambda: self.db.table("threads").update(key, {"container_id": None, "container_expires_at": None})
        )

    async def delete_idle_since(self, moment: str) -> int:
        """Delete conversations untouched since ``moment``; returns how many."""
        return await self.store.call(self._delete_where, "updated_at < ?", [moment])

    def _delete_where(self, where: str, params: list[Any]) -> int:
        keys = [row["key"] for row in self.db.table("threads").rows_where(where, params)]
        with self.db.conn:
            for key in keys:
                self.db.execute("DELETE FROM turns WHERE thread_key = ?", [key])
                self.db.execute("DELETE FROM thread_files WHERE thread_key = ?", [key])
                self.db.execute("DELETE FROM threads WHERE key = ?", [key])
        return len(keys)

    async def delete_for_user(self, user_id: str) -> int:
        """Delete every conversation ``user_id`` started; returns how many."""
        return await self.store.call(self._delete_where, "user_id = ?", [user_id])

    # -- files people share (for /analyze without a link) --------------------------------

    async def record_share(self, *, team_id: str, channel_id: str, user_id: str, slack_file_id: str) -> None:
        """Remember that ``user_id`` shared a file in ``channel_id`` (the latest share wins)."""
        sql = (
            "INSERT INTO shares (team_id, channel_id, user_id, slack_file_id, shared_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (channel_id, user_id, slack_file_id) DO UPDATE SET shared_at = excluded.shared_at"
        )
        params = [team_id, channel_id, user_id, slack_file_id, self.store.now()]
        await self.store.call(lambda: self.db.execute(sql, params))

    async def recent_shares(
        self, *, channel_id: str, user_id: str, since: str, batch_seconds: float = 120
    ) -> list[str]:
        """Slack file ids of the user's most recent share in the channel (one batch), newest first."""

        def query() -> list[str]:
            rows = list(
                self.db.table("shares").rows_where(
                    "channel_id = ? AND user_id = ? AND shared_at >= ?",
                    [channel_id, user_id, since],
                    order_by="shared_at DESC",
                )
            )
            if not rows:
                return []
            newest = parse_iso(rows[0]["shared_at"])
            return [r["slack_file_id"] for r in rows if newest - parse_iso(r["shared_at"]) <= batch_seconds]

        return await self.store.call(query)


def parse_iso(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
