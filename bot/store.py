"""The bot's SQLite store: seen events, uploaded files and the run ledger.

One :class:`Store` owns one connection, used only from its own worker thread, so every
read and write is serialised through a single path (no ``database is locked`` within a
process) while the event loop never blocks on disk. The database runs in WAL mode with a
busy timeout so a second process (the CLI, say) can read alongside.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

T = TypeVar("T")

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "refused", "cancelled")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "refused", "cancelled"})

RUN_COLUMNS: dict[str, type] = {
    "id": int,
    "team_id": str,
    "channel_id": str,
    "thread_ts": str,
    "message_ts": str,
    "user_id": str,
    "source": str,
    "question": str,
    "status": str,
    "started_at": str,
    "finished_at": str,
    "model": str,
    "tool_version": str,
    "container_id": str,
    "input_tokens": int,
    "output_tokens": int,
    "cache_read_tokens": int,
    "cache_write_tokens": int,
    "code_executions": int,
    "files_in": int,
    "files_out": int,
    "error": str,
}

FILE_COLUMNS: dict[str, type] = {
    "id": str,  # the Anthropic Files API id
    "sha256": str,
    "origin": str,  # "upload" (a user's file we sent) or "generated" (made by code execution)
    "filename": str,
    "mime_type": str,
    "size_bytes": int,
    "team_id": str,
    "user_id": str,
    "run_id": int,
    "created_at": str,
    "deleted_at": str,
}


def utc_iso(timestamp: float) -> str:
    """A sortable UTC timestamp with millisecond precision, as stored in every table."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class FileRecord:
    id: str
    sha256: str | None
    origin: str
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
        await self._call(self._open)
        return self

    async def close(self) -> None:
        if self._db is not None:
            await self._call(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> Store:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
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
        db.table("events").create({"key": str, "received_at": str}, pk="key", if_not_exists=True)
        db.table("files").create(FILE_COLUMNS, pk="id", if_not_exists=True)
        db.table("files").add_missing_columns([FILE_COLUMNS])
        db.table("files").create_index(["sha256"], if_not_exists=True)
        db.table("runs").create(RUN_COLUMNS, pk="id", if_not_exists=True)
        db.table("runs").add_missing_columns([RUN_COLUMNS])
        db.table("runs").create_index(["user_id", "started_at"], if_not_exists=True)
        db.table("runs").create_index(["status"], if_not_exists=True)
        self._db = db

    # -- events ----------------------------------------------------------------------

    async def claim(self, key: str) -> bool:
        """Record ``key`` as seen. True the first time only, atomically."""
        return await self._call(self._claim, key)

    def _claim(self, key: str) -> bool:
        cursor = self.db.execute("INSERT OR IGNORE INTO events (key, received_at) VALUES (?, ?)", [key, self.now()])
        return cursor.rowcount == 1

    # -- files -----------------------------------------------------------------------

    async def find_upload(self, sha256: str) -> FileRecord | None:
        """The live Files API upload of this content, if we made one."""
        return await self._call(self._find_upload, sha256)

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
        origin: str,
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
        await self._call(lambda: self.db.table("files").upsert(row, pk="id"))

    async def mark_file_deleted(self, file_id: str) -> None:
        await self._call(lambda: self.db.table("files").update(file_id, {"deleted_at": self.now()}))

    async def files(self) -> list[dict[str, Any]]:
        return await self._call(lambda: list(self.db.table("files").rows))

    # -- runs ------------------------------------------------------------------------

    async def create_run(self, **fields: Any) -> int:
        """Insert a run (status ``queued`` unless given) and return its id."""
        row = {"status": "queued", "started_at": self.now(), **fields}
        unknown = set(row) - set(RUN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown run columns: {sorted(unknown)}")

        def insert() -> int:
            table = self.db.table("runs")
            table.insert(row)
            return int(table.last_pk or 0)

        return await self._call(insert)

    async def update_run(self, run_id: int, **fields: Any) -> None:
        unknown = set(fields) - set(RUN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown run columns: {sorted(unknown)}")
        if "status" in fields and fields["status"] not in RUN_STATUSES:
            raise ValueError(f"unknown run status {fields['status']!r}")
        if fields.get("status") in TERMINAL_STATUSES:
            fields.setdefault("finished_at", self.now())
        await self._call(lambda: self.db.table("runs").update(run_id, fields))

    async def get_run(self, run_id: int) -> dict[str, Any]:
        return await self._call(lambda: dict(self.db.table("runs").get(run_id)))

    async def runs(self, where: str | None = None, params: list[Any] | None = None) -> list[dict[str, Any]]:
        return await self._call(lambda: list(self.db.table("runs").rows_where(where, params or [], order_by="id")))


def _file_record(row: dict[str, Any]) -> FileRecord:
    return FileRecord(
        id=row["id"],
        sha256=row["sha256"],
        origin=row["origin"],
        filename=row["filename"],
        mime_type=row["mime_type"],
        size_bytes=row["size_bytes"],
    )
