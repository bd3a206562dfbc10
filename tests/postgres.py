"""A throwaway PostgreSQL server for the store suite, and a database per test on it.

The session's server is made with the PostgreSQL binaries on this machine (``initdb`` and
``pg_ctl``: on the PATH, or Debian's /usr/lib/postgresql/<version>/bin) in a temporary
directory, run as the ``postgres`` user when the tests run as root (PostgreSQL refuses to run as
root), and listens on a Unix socket in that directory only (no TCP port). It is stopped and
removed at the end of the session. Each test that asks for ``store_target`` with the
``postgresql`` parameter gets a fresh, empty database on it.

Without the binaries the PostgreSQL half of the suite fails with a message saying what to
install when ``CI`` is set (``.ci/run`` installs them), and is skipped with that reason otherwise.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL_HINT = "install PostgreSQL's server binaries (Debian: apt-get install -y postgresql-15)"
SERVER_USER = "postgres"  # who runs the server when the tests run as root


def find_bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: the PATH, else the newest /usr/lib/postgresql/*/bin."""
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("pg_ctl") is not None:
        return Path(os.path.realpath(initdb)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path  # the temporary directory: data/, the socket, the log
    as_user: list[str]  # the command prefix that runs a binary as the server's user
    names: Iterator[int]

    @property
    def socket_dir(self) -> Path:
        return self.root

    def url(self, database: str) -> str:
        return f"postgresql://{SERVER_USER}@/{database}?host={self.socket_dir}"

    def run(self, binary: str, *args: str) -> None:
        result = subprocess.run(  # checked below, with the output in the message
            [*self.as_user, str(self.bin_dir / binary), *args], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"{binary} {' '.join(args)} failed:\n{result.stdout}{result.stderr}")

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        name = f"analyst_{next(self.names)}"
        self.run("createdb", "-h", str(self.socket_dir), "-U", SERVER_USER, "-T", "template0", name)
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.split("/")[-1].split("?")[0]
        self.run("dropdb", "-h", str(self.socket_dir), "-U", SERVER_USER, "--force", name)


def start_server() -> PostgresServer:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = f"PostgreSQL tests need initdb and pg_ctl, which are not on this machine: {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="analyst-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL won't run as root: hand the directory to its own user
        try:
            account = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.fail(f"tests run as root need a {SERVER_USER!r} user to run PostgreSQL: {INSTALL_HINT}")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", SERVER_USER, "--"]
    server = PostgresServer(bin_dir, root, as_user, itertools.count(1))
    data = root / "data"
    server.run("initdb", "-D", str(data), "-U", SERVER_USER, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
    options = (
        f"-k {root} -c listen_addresses='' -c max_connections=300 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    server.run("pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "start")
    return server


def stop_server(server: PostgresServer) -> None:
    try:
        server.run("pg_ctl", "-D", str(server.root / "data"), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_server()
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    url = postgres_server.create_database()
    yield url
    with contextlib.suppress(RuntimeError):  # a test that left connections open: --force handles most
        postgres_server.drop_database(url)


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's store lives: an SQLite file, or a fresh PostgreSQL database (by URL)."""
    if request.param == "sqlite":
        return tmp_path / "analyst.db"
    url: str = request.getfixturevalue("postgres_url")
    return url
