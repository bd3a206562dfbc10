"""The database under the store: one async interface, SQLite or PostgreSQL beneath it.

SQL is written once, in the subset both engines speak: ``?`` placeholders (turned into
``$1, $2, …`` for PostgreSQL), ``INSERT … ON CONFLICT … DO NOTHING / DO UPDATE`` and
``RETURNING``. Everything above this module — claims, quota admission, the ledger, files,
threads — is written once against :class:`Queries`.

- :class:`SqliteDatabase`: one connection (a single write path, so no ``database is locked``
  within a process), in WAL mode. Statements run on the event loop's thread; a commit's fsync
  and any wait for another process's lock run on one worker thread. A transaction is
  ``BEGIN IMMEDIATE``, a write outside one is a transaction of its own, and statements from
  other tasks wait for it to end.
- :class:`PostgresDatabase` (``ANALYST_DB=postgresql://…``): an asyncpg pool; a transaction
  holds one pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

T = TypeVar("T")
Row = dict[str, Any]
Params = Sequence[Any]
Dialect = Literal["sqlite", "postgresql"]

#: ``ANALYST_DB``: a file for SQLite, or a ``postgresql://`` URL (a str) for PostgreSQL.
DatabaseTarget = Path | str

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(value: str) -> bool:
    return value.startswith(POSTGRES_SCHEMES)


def database_target(value: str) -> DatabaseTarget:
    """``ANALYST_DB``'s value: a PostgreSQL URL stays a str; anything else is an SQLite file."""
    return value if is_postgres_url(value) else Path(value)


def describe_target(target: DatabaseTarget) -> str:
    """The target as it may be shown to a person or logged: a URL's password is masked."""
    if isinstance(target, Path):
        return str(target)
    parts = urlsplit(target)
    if parts.password is None:
        return target
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class DatabaseUnavailable(Exception):
    """The database could not be opened; the message names it (password masked), says why and
    what to check."""


class Queries(Protocol):
    """What a statement can be run on: the database itself (each statement on its own) or a
    transaction (every statement in it, or none, takes effect)."""

    dialect: Dialect

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row the statement returns, as dicts."""
        ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row the statement returns, or None."""
        ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; returns how many rows it changed."""
        ...


class Database(Queries, Protocol):
    #: What the driver raises when the database refuses or can't be reached.
    errors: tuple[type[BaseException], ...]

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Queries]:
        """Every statement run on the yielded :class:`Queries` commits together, or none does
        (an exception, or cancellation, rolls back). Inside, run statements on the yielded
        object only: on SQLite the database's own methods wait for the transaction to end. On
        SQLite it excludes every other writer (``BEGIN IMMEDIATE``); on PostgreSQL it is READ
        COMMITTED, so take :func:`lock` on what must not change under it."""
        ...


# The most connections one process keeps open to PostgreSQL (ANALYST_DB_POOL_SIZE).
DEFAULT_POOL_SIZE = 10


def open_database(target: DatabaseTarget, *, pool_size: int = DEFAULT_POOL_SIZE) -> Database:
    """The backend ``target`` names (not yet opened); ``pool_size`` bounds PostgreSQL's pool."""
    if isinstance(target, str) and is_postgres_url(target):
        return PostgresDatabase(target, max_connections=pool_size)
    return SqliteDatabase(Path(target))


# ---------------------------------------------------------------------------------- SQLite


def _rows(cursor: sqlite3.Cursor) -> list[Row]:
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


#: How long a statement on the worker thread waits for another process's write lock.
BUSY_TIMEOUT_MS = 30_000

# SQLITE_BUSY and SQLITE_LOCKED: another connection holds a lock this statement needs.
_WOULD_WAIT = (5, 6)


def _is_read(sql: str) -> bool:
    """A statement that only reads (a write outside a transaction gets one of its own)."""
    return sql.lstrip()[:6].upper() == "SELECT"


class _SqliteStatements:
    """Statements on the SQLite connection, run as the caller's turn allows (see
    :meth:`SqliteDatabase.now_or_blocking`)."""

    dialect: Dialect = "sqlite"

    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._database.now_or_blocking(lambda conn: _rows(conn.execute(sql, list(params))))

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await self._database.now_or_blocking(lambda conn: conn.execute(sql, list(params)).rowcount)


class SqliteDatabase:
    """One SQLite connection; see the module's docstring.

    A statement takes microseconds, so it runs right away on the event loop's thread, which
    never waits there: the connection's busy timeout is 0. What may wait goes to the one worker
    thread: a ``COMMIT`` that wrote something (its fsync), a statement that found another
    process's lock (``SQLITE_BUSY``, retried there with a 30 s busy timeout), migrations and
    ``close``. So a transaction costs one hand-over to the thread, not one per statement: under
    a burst of events each hand-over waits for a whole turn of a busy event loop, and with one
    per statement the database, which every request passes through, became the queue.
    """

    dialect: Dialect = "sqlite"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._conn: sqlite3.Connection | None = None
        # Held by a transaction from BEGIN to COMMIT, and by each statement outside one, so no
        # other task's statement lands inside someone's transaction on the shared connection
        # (and none runs on the loop's thread while the worker thread has the connection).
        self._turn = asyncio.Lock()
        self._inside = _SqliteStatements(self)
        self._group: _Group | None = None  # the transaction the next one joins, until it commits
        self._savepoints = itertools.count()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the database is not open")
        return self._conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` on the worker thread, in its own turn, waiting for locks as needed."""
        async with self._turn:
            await self._end_group(self._group)
            return await self.blocking(fn)

    async def blocking(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` on the worker thread, with the busy timeout (the caller has the turn).
        Cancelled, it still waits for the thread to finish with the connection before raising."""
        conn = self.conn

        def waiting(conn: sqlite3.Connection) -> T:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            try:
                return fn(conn)
            finally:
                conn.execute("PRAGMA busy_timeout = 0")

        done = asyncio.get_running_loop().run_in_executor(self._executor, waiting, conn)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            while not done.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([done])
            raise

    async def now_or_blocking(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` on this thread if it needs no lock another process holds, else on
        the worker thread (:meth:`blocking`). The caller has the turn. A statement refused with
        ``SQLITE_BUSY`` changed nothing, so running it again is safe."""
        try:
            return fn(self.conn)
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode not in _WOULD_WAIT:
                raise
        return await self.blocking(fn)

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            memory = str(self.path) == ":memory:"
            if not memory:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=0, isolation_level=None, check_same_thread=False)
            if not memory:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")  # another process may be migrating
                conn.execute("PRAGMA journal_mode = wal")
                # A commit is on disk when it returns (the ledger resumes every admitted run);
                # SQLite's usual default, set so that no build's other default weakens it.
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA busy_timeout = 0")
            return conn

        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(self._executor, connect)
        except (sqlite3.Error, OSError) as error:
            raise DatabaseUnavailable(
                f"could not open the database {self.path}: {error}. Check ANALYST_DB, and that its folder "
                "exists or can be created and is writable by this user."
            ) from error

    async def close(self) -> None:
        async with self._turn:  # not in the middle of someone's transaction
            if self._conn is not None:
                await self._end_group(self._group)
                await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
                self._conn = None
        self._executor.shutdown(wait=True)

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        if not _is_read(sql):
            async with self.transaction() as tx:
                return await tx.fetch(sql, params)
        async with self._turn:
            return await self._inside.fetch(sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Params = ()) -> int:
        if not _is_read(sql):
            async with self.transaction() as tx:
                return await tx.execute(sql, params)
        async with self._turn:
            return await self._inside.execute(sql, params)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Queries]:
        async with self._turn:
            group = self._group
            if group is None:
                await self.now_or_blocking(lambda conn: conn.execute("BEGIN IMMEDIATE"))
                group = self._group = _Group(asyncio.get_running_loop(), self.conn.total_changes)
                # Queued for the turn behind every transaction already waiting for it: those
                # join this one, and all of them commit together.
                group.committing = asyncio.get_running_loop().create_task(self._commit_when_turn(group))
            savepoint = f"tx{next(self._savepoints)}"
            self.conn.execute(f"SAVEPOINT {savepoint}")
            try:
                yield self._inside
            except BaseException:
                # After an error on which SQLite ended the whole transaction there is no savepoint
                # to return to: the group's COMMIT then fails, and every member hears of it.
                if self.conn.in_transaction:
                    self.conn.execute(f"ROLLBACK TO {savepoint}")  # undoes this transaction's part only
                    self.conn.execute(f"RELEASE {savepoint}")
                raise
            self.conn.execute(f"RELEASE {savepoint}")
        await asyncio.shield(group.committed)  # durable once the group's COMMIT has returned

    async def _commit_when_turn(self, group: _Group) -> None:
        async with self._turn:
            await self._end_group(group)

    async def _end_group(self, group: _Group | None) -> None:
        """End ``group`` (the caller has the turn), if it is still open: one ``COMMIT`` for all
        its transactions, whose outcome each of them gets (a failed commit is raised to them)."""
        if group is None or self._group is not group:
            return
        self._group = None
        wrote = self.conn.total_changes != group.changes_before
        try:
            # Writes wait for their fsync on the worker thread; a group that only read has none.
            await (self.blocking(_commit) if wrote else self.now_or_blocking(_commit))
        except asyncio.CancelledError:
            # Cancelled (at shutdown), the thread has still finished: did the COMMIT happen?
            if self.conn.in_transaction:
                _rollback(self.conn)
                group.committed.set_exception(sqlite3.OperationalError("the commit was cancelled"))
            else:
                group.committed.set_result(None)
            raise
        except Exception as error:  # noqa: BLE001 - raised to every transaction of the group instead
            _rollback(self.conn)
            group.committed.set_exception(error)
        else:
            group.committed.set_result(None)


class _Group:
    """Transactions of several tasks that share one ``BEGIN IMMEDIATE … COMMIT`` (group commit),
    each in a savepoint of its own: one that fails is undone alone; the commit makes them
    durable together, with one fsync where each would have had its own. Under a burst of
    events, every request's claims, lock and admission would otherwise queue for a commit each."""

    def __init__(self, loop: asyncio.AbstractEventLoop, changes_before: int) -> None:
        self.changes_before = changes_before  # the connection's total_changes at BEGIN
        self.committed: asyncio.Future[None] = loop.create_future()
        # Nobody may be left to await it (every member cancelled): that is not an error to report.
        self.committed.add_done_callback(lambda done: done.cancelled() or done.exception())
        self.committing: asyncio.Task[None] | None = None  # (held: the loop keeps only weak references)


def _commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


# ---------------------------------------------------------------------------------- PostgreSQL

_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?")


def to_numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, …`` (quoted text and names left alone)."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match[0] != "?":
            return match[0]
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, sql)


def _changed(status: str) -> int:
    """Rows a statement changed, from asyncpg's command tag ("UPDATE 3", "INSERT 0 1")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _PostgresStatements:
    """Statements on one asyncpg connection (or on the pool, one connection per statement)."""

    dialect: Dialect = "postgresql"

    def __init__(self, target: asyncpg.Pool | PoolConnectionProxy) -> None:
        self._target = target

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        return [dict(record) for record in await self._target.fetch(to_numbered(sql), *params)]

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        record = await self._target.fetchrow(to_numbered(sql), *params)
        return dict(record) if record is not None else None

    async def execute(self, sql: str, params: Params = ()) -> int:
        return _changed(await self._target.execute(to_numbered(sql), *params))


class PostgresDatabase:
    """An asyncpg pool on ``url``; see the module's docstring."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, max_connections: int = DEFAULT_POOL_SIZE) -> None:
        import asyncpg

        self.url = url
        self.max_connections = max_connections
        self.errors: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the database is not open")
        return self._pool

    async def open(self) -> None:
        import asyncpg

        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self.max_connections)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
            raise DatabaseUnavailable(
                f"could not connect to the database {describe_target(self.url)}: {error or type(error).__name__}. "
                "Check ANALYST_DB (host, port, user, password and database name) and that the server is "
                "running and accepts this user."
            ) from error

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        return await _PostgresStatements(self.pool).fetch(sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        return await _PostgresStatements(self.pool).fetchone(sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await _PostgresStatements(self.pool).execute(sql, params)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Queries]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield _PostgresStatements(conn)


def lock_id(key: str) -> int:
    """A stable 64-bit id for ``key`` (the same in every process), for PostgreSQL's advisory locks."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


async def lock(tx: Queries, *keys: str) -> None:
    """Serialise the transaction ``tx`` with every other one that locks any of ``keys``, until it ends.

    On SQLite the transaction's ``BEGIN IMMEDIATE`` already excludes every other writer, so there is
    nothing more to take. On PostgreSQL each key is a transaction-scoped advisory lock, taken in
    one global order (by id) so two transactions locking overlapping keys can never deadlock.
    """
    if tx.dialect != "postgresql":
        return
    for ident in sorted({lock_id(key) for key in keys}):
        await tx.execute("SELECT pg_advisory_xact_lock(?)", [ident])
