"""`slack-analyst doctor` as an operator runs it: the real CLI in a process, against the fakes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from bot.cli import main
from bot.doctor import BOT_SCOPES, check_bot_token, check_scopes, check_signing_secret, format_check, read_config
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_manifest import manifest_bot_scopes

REPO = Path(__file__).resolve().parents[1]
# Slack signing secrets are 32 hexadecimal characters (Basic Information → App Credentials).
SIGNING_SECRET = "8f742231b10e8888abcd99edabcd85a5"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(signing_secret=SIGNING_SECRET) as fake:
        yield fake


Doctor = Callable[..., Awaitable[tuple[int, str]]]


@pytest.fixture
def doctor(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Doctor:
    """Run the CLI's entry point (``bot.cli:main``, what ``slack-analyst`` calls) as
    ``slack-analyst doctor ARGS`` with exactly ``env`` as its settings; returns its exit
    status and output. It runs in a thread with its own event loop, as in a process of its own."""

    async def run(env: dict[str, str], *args: str, cwd: Path) -> tuple[int, str]:
        for name in list(os.environ):
            if name.startswith(("SLACK_", "ANTHROPIC_", "ANALYST_")) or name == "PORT":
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        status = await asyncio.to_thread(main, ["doctor", *args])
        output = capsys.readouterr()
        assert not output.err.strip(), output.err
        return status, output.out

    return run


def line(output: str, name: str) -> str:
    """The checklist line for ``name`` (with its fix, if any)."""
    match = re.search(rf"^([✓✗–]) {re.escape(name)}: .*(\n    fix: .*)?", output, re.MULTILINE)
    assert match, f"no line for {name!r} in:\n{output}"
    return match.group(0)


def statuses(output: str) -> dict[str, str]:
    return {m.group(2): m.group(1) for m in re.finditer(r"^([✓✗–]) ([^:]+):", output, re.MULTILINE)}


ALL_CHECKS = [
    "settings",
    "Slack bot token",
    "Slack scopes",
    "Socket Mode",
    "Slack signing secret",
    "Anthropic API key",
    "model",
    "Files API",
    "tool versions",
    "database",
]


async def test_a_healthy_http_set_up_passes_every_check(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, doctor: Doctor
) -> None:
    status, output = await doctor(env, cwd=tmp_path)
    assert status == 0, output
    assert list(statuses(output)) == ALL_CHECKS
    assert line(output, "Slack bot token") == "✓ Slack bot token: @analyst in Acme (T0TEAM)"
    assert line(output, "Slack scopes") == "✓ Slack scopes: all 13 bot scopes in manifest.yml granted"
    assert line(output, "Socket Mode").startswith("– Socket Mode: not used")
    assert "verifies that requests to /slack/events come from Slack" in line(output, "Slack signing secret")
    assert line(output, "model") == "✓ model: claude-sonnet-5-5 (Claude Sonnet 5.5)"
    database = f"✓ database: {tmp_path / 'analyst.db'}: created, schema current (migration 4 of 4)"
    assert line(output, "database") == database
    assert output.endswith("No check failed.\n")
    assert [c.method for c in slack.calls] == ["auth.test"]
    assert [(r.method, r.path) for r in claude.requests] == [
        ("GET", "/v1/models/claude-sonnet-5-5"),
        ("GET", "/v1/files"),
    ]
    assert claude.requests[1].query == {"limit": "1"}
    assert claude.uploads == []


async def test_socket_mode_is_checked_by_connecting(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, doctor: Doctor
) -> None:
    status, output = await doctor({**env, "SLACK_APP_TOKEN": slack.app_token}, cwd=tmp_path)
    assert status == 0, output
    assert output.endswith("All 10 checks passed.\n")
    assert line(output, "settings") == "✓ settings: readable; the bot will receive events in Socket Mode"
    assert line(output, "Socket Mode") == "✓ Socket Mode: connected and greeted by Slack"
    assert [c.method for c in slack.calls] == ["auth.test", "apps.connections.open"]
    assert slack.socket.connects == 1


async def test_a_bad_bot_token_is_named_and_the_other_checks_still_run(
    tmp_path: Path, env: dict[str, str], claude: FakeAnthropic, doctor: Doctor
) -> None:
    status, output = await doctor({**env, "SLACK_BOT_TOKEN": "xoxb-revoked"}, cwd=tmp_path)
    assert status == 1
    assert line(output, "Slack bot token") == (
        "✗ Slack bot token: Slack refused it (invalid_auth)\n"
        "    fix: copy the Bot User OAuth Token (xoxb-…) again from OAuth & Permissions; "
        "if the app was uninstalled, reinstall the app from manifest.yml"
    )
    assert line(output, "Slack scopes").startswith("– Slack scopes: not checked")
    assert statuses(output)["Anthropic API key"] == "✓" and statuses(output)["database"] == "✓"
    assert "xoxb-revoked" not in output
    assert output.endswith("1 of 10 checks failed.\n")


async def test_a_missing_scope_is_named_with_reinstall_advice(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, doctor: Doctor
) -> None:
    slack.granted_scopes -= {"files:write", "reactions:write"}
    status, output = await doctor(env, cwd=tmp_path)
    assert status == 1
    scopes = line(output, "Slack scopes")
    assert scopes.startswith("✗ Slack scopes: missing files:write, reactions:write\n")
    assert "reinstall the app from manifest.yml" in scopes
    assert statuses(output)["Slack bot token"] == "✓"


async def test_a_bad_app_token_fails_socket_mode(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, doctor: Doctor
) -> None:
    status, output = await doctor({**env, "SLACK_APP_TOKEN": "xapp-1-wrong"}, cwd=tmp_path)
    assert status == 1
    socket = line(output, "Socket Mode")
    assert socket.startswith("✗ Socket Mode: Slack refused the app token (invalid_auth)\n")
    assert "App-Level Tokens" in socket and "connections:write" in socket
    assert slack.socket.connects == 0


async def test_http_mode_without_a_signing_secret_fails(
    tmp_path: Path, env: dict[str, str], claude: FakeAnthropic, doctor: Doctor
) -> None:
    del env["SLACK_SIGNING_SECRET"]
    status, output = await doctor(env, cwd=tmp_path)
    assert status == 1
    secret = line(output, "Slack signing secret")
    assert secret.startswith("✗ Slack signing secret: SLACK_SIGNING_SECRET is not set; HTTP mode needs it")
    assert "verifies that requests to /slack/events come from Slack" in secret
    assert "Basic Information → App Credentials" in secret
    assert output.endswith("1 of 10 checks failed.\n")


async def test_socket_mode_needs_no_signing_secret(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, doctor: Doctor
) -> None:
    del env["SLACK_SIGNING_SECRET"]
    status, output = await doctor({**env, "SLACK_APP_TOKEN": slack.app_token}, cwd=tmp_path)
    assert status == 0, output
    assert line(output, "Slack signing secret").startswith("– Slack signing secret: not needed in Socket Mode")


async def test_a_bad_anthropic_key_fails_and_skips_what_needs_it(
    tmp_path: Path, env: dict[str, str], claude: FakeAnthropic, doctor: Doctor
) -> None:
    status, output = await doctor({**env, "ANTHROPIC_API_KEY": "sk-ant-wrong"}, cwd=tmp_path)
    assert status == 1
    key = line(output, "Anthropic API key")
    assert key.startswith("✗ Anthropic API key: refused (")
    assert "console.anthropic.com" in key
    assert line(output, "model").startswith("– model: claude-sonnet-5-5: not checked")
    assert line(output, "Files API").startswith("– Files API: not checked")
    assert "sk-ant-wrong" not in output
    assert output.endswith("1 of 10 checks failed.\n")


async def test_an_unknown_model_fails(
    tmp_path: Path, env: dict[str, str], claude: FakeAnthropic, doctor: Doctor
) -> None:
    status, output = await doctor({**env, "ANALYST_MODEL": "claude-sonnet-9-9"}, cwd=tmp_path)
    assert status == 1
    assert line(output, "Anthropic API key") == "✓ Anthropic API key: accepted"
    model = line(output, "model")
    assert model.startswith("✗ model: claude-sonnet-9-9 is not a model Anthropic knows (not found)\n")
    assert "ANALYST_MODEL" in model
    assert claude.requests[0].path == "/v1/models/claude-sonnet-9-9" and claude.requests[0].status == 404


async def test_a_failing_files_api_is_reported(
    tmp_path: Path, env: dict[str, str], claude: FakeAnthropic, doctor: Doctor
) -> None:
    claude.fail_next("files.list", status=403)
    status, output = await doctor(env, cwd=tmp_path)
    assert status == 1
    files = line(output, "Files API")
    assert files.startswith("✗ Files API: Anthropic answered 403: ")
    assert "Files API" in files.split("fix:")[1]
    assert output.endswith("1 of 10 checks failed.\n")


async def test_a_database_path_that_is_not_writable_fails(
    tmp_path: Path, env: dict[str, str], claude: FakeAnthropic, doctor: Doctor
) -> None:
    (tmp_path / "not-a-directory").write_text("")  # even root can't create a directory inside a file
    db = tmp_path / "not-a-directory" / "analyst.db"
    status, output = await doctor({**env, "ANALYST_DB": str(db)}, cwd=tmp_path)
    assert status == 1
    database = line(output, "database")
    assert database.startswith(f"✗ database: can't write {db} (")
    assert "set ANALYST_DB to a file in a directory this user can write" in database
    assert output.endswith("1 of 10 checks failed.\n")


async def test_a_database_with_an_outdated_table_is_brought_up_to_date(
    tmp_path: Path, env: dict[str, str], claude: FakeAnthropic, doctor: Doctor
) -> None:
    with contextlib.closing(sqlite3.connect(env["ANALYST_DB"])) as old, old:
        # a threads table from before containers were kept, as create-if-not-exists left it
        old.execute("CREATE TABLE threads (key TEXT PRIMARY KEY, channel_id TEXT, thread_ts TEXT)")
        old.execute("INSERT INTO threads VALUES ('C1:1.0', 'C1', '1.0')")
    status, output = await doctor(env, cwd=tmp_path)
    assert status == 0, output
    assert line(output, "database") == (
        f"✓ database: {env['ANALYST_DB']}: writable, schema current (migration 4 of 4), 0 runs recorded"
    )
    with contextlib.closing(sqlite3.connect(env["ANALYST_DB"])) as db:
        assert db.execute("SELECT key, container_expires_at, created_at FROM threads").fetchall() == [
            ("C1:1.0", None, None)
        ]


async def test_a_database_a_newer_release_migrated_is_reported(
    tmp_path: Path, env: dict[str, str], claude: FakeAnthropic, doctor: Doctor
) -> None:
    await doctor(env, cwd=tmp_path)
    with contextlib.closing(sqlite3.connect(env["ANALYST_DB"])) as db, db:
        db.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('slack-analyst', 'm999_from_the_future', '2099-01-01')"
        )
    status, output = await doctor(env, cwd=tmp_path)
    assert status == 1
    database = line(output, "database")
    assert database.startswith(
        f"✗ database: {env['ANALYST_DB']}: made by a newer slack-analyst (its migrations m999_from_the_future"
    )
    assert "upgrade slack-analyst" in database


async def test_a_database_that_cannot_be_migrated_is_reported_and_left_as_it_was(
    tmp_path: Path, env: dict[str, str], claude: FakeAnthropic, doctor: Doctor
) -> None:
    with contextlib.closing(sqlite3.connect(env["ANALYST_DB"])) as old, old:
        # a hand-made shares table holding the same share twice: the unique index can't be built
        old.execute("CREATE TABLE shares (id INTEGER PRIMARY KEY, channel_id TEXT, user_id TEXT, slack_file_id TEXT)")
        old.executemany("INSERT INTO shares (channel_id, user_id, slack_file_id) VALUES ('C', 'U', 'F')", [(), ()])
    status, output = await doctor(env, cwd=tmp_path)
    assert status == 1
    database = line(output, "database")
    assert database.startswith(f"✗ database: {env['ANALYST_DB']}: upgrading the database schema failed (")
    assert "it was left unchanged" in database and "start from a fresh ANALYST_DB" in database
    with contextlib.closing(sqlite3.connect(env["ANALYST_DB"])) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"shares"}


async def test_an_existing_database_is_checked_without_leaving_anything_behind(
    tmp_path: Path, env: dict[str, str], claude: FakeAnthropic, doctor: Doctor
) -> None:
    await doctor(env, cwd=tmp_path)
    status, output = await doctor(env, cwd=tmp_path)
    assert status == 0, output
    assert line(output, "database") == (
        f"✓ database: {env['ANALYST_DB']}: writable, schema current (migration 4 of 4), 0 runs recorded"
    )
    with sqlite3.connect(env["ANALYST_DB"]) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone() == (0,)


async def test_bad_settings_are_each_reported_and_every_check_still_runs(
    tmp_path: Path, env: dict[str, str], claude: FakeAnthropic, doctor: Doctor
) -> None:
    env = {**env, "ANALYST_MAX_FILE_MB": "ten", "ANALYST_CODE_EXECUTION": "1999", "ANALYST_RUNS_PER_HOUR": "-1"}
    status, output = await doctor(env, cwd=tmp_path)
    assert status == 1
    assert list(statuses(output)) == ALL_CHECKS
    settings = line(output, "settings")
    assert settings.startswith("✗ settings: ANALYST_MAX_FILE_MB: should be a number, got 'ten'; ANALYST_RUNS_PER_HOUR")
    tools = line(output, "tool versions")
    assert tools.startswith("✗ tool versions: ANALYST_CODE_EXECUTION: unknown tool version '1999'")
    assert {name for name, mark in statuses(output).items() if mark == "✗"} == {"settings", "tool versions"}


async def test_a_missing_anthropic_key_does_not_stop_the_slack_checks(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, doctor: Doctor
) -> None:
    del env["ANTHROPIC_API_KEY"]
    status, output = await doctor(env, cwd=tmp_path)
    assert status == 1
    assert line(output, "Anthropic API key").startswith("✗ Anthropic API key: ANTHROPIC_API_KEY: is not set\n")
    assert statuses(output)["Slack bot token"] == "✓"
    assert claude.requests == []


async def test_live_runs_one_small_analysis_and_prints_its_cost(
    tmp_path: Path, env: dict[str, str], claude: FakeAnthropic, doctor: Doctor
) -> None:
    status, output = await doctor(env, "--live", cwd=tmp_path)
    assert status == 0, output
    live = line(output, "live analysis")
    assert re.fullmatch(r"✓ live analysis: answered in \d+ steps?; cost: [\d,]+ tokens, about \$0\.\d{4}", live), live
    (upload,) = claude.uploads
    assert upload.filename == "doctor_check.csv" and upload.size_bytes < 100
    assert claude.message_requests and claude.message_requests[0].path == "/v1/messages"
    assert all(f.deleted for f in claude.files.values()), "the doctor leaves no files at Anthropic"
    assert output.endswith("No check failed.\n")


async def test_live_is_skipped_when_the_key_does_not_work(
    tmp_path: Path, env: dict[str, str], claude: FakeAnthropic, doctor: Doctor
) -> None:
    status, output = await doctor({**env, "ANTHROPIC_API_KEY": "sk-ant-wrong"}, "--live", cwd=tmp_path)
    assert status == 1
    assert line(output, "live analysis").startswith("– live analysis: not run")
    assert claude.message_requests == []


# ------------------------------------------------------------------------- pure parts


def test_the_scopes_doctor_expects_are_the_manifests() -> None:
    assert set(BOT_SCOPES) == manifest_bot_scopes()


def test_scopes_unknown_to_slack_are_not_a_failure() -> None:
    assert check_scopes(None).status == "skip"
    assert check_scopes(frozenset(BOT_SCOPES) | {"extra:read"}).status == "ok"


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("xoxb-123-456", "holds a token, not the signing secret"),
        ("abcdefghijklmnopqrstuvwx", "looks like the deprecated Verification Token"),
        (SIGNING_SECRET[:-1], "is not 32 hexadecimal characters (got 31 characters)"),
    ],
)
def test_a_malformed_signing_secret_is_explained(secret: str, problem: str) -> None:
    config = read_config({"ANTHROPIC_API_KEY": "k", "SLACK_SIGNING_SECRET": secret})
    check = check_signing_secret(config)
    assert check.failed and problem in check.found and "HTTP mode needs it" in check.found


async def test_a_bad_or_missing_slack_setting_is_reported_without_calling_slack() -> None:
    async with aiohttp.ClientSession() as session:
        missing, _ = await check_bot_token(read_config({"ANTHROPIC_API_KEY": "k"}), session)
        wrong_kind, _ = await check_bot_token(
            read_config({"ANTHROPIC_API_KEY": "k", "SLACK_BOT_TOKEN": "xapp-1"}), session
        )
        bad_url, _ = await check_bot_token(
            read_config({"ANTHROPIC_API_KEY": "k", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_API_URL": "slack.com"}), session
        )
    assert (missing.found, wrong_kind.found) == (
        "SLACK_BOT_TOKEN is not set",
        "SLACK_BOT_TOKEN: should start with 'xoxb-'",
    )
    assert "OAuth & Permissions" in missing.fix and "OAuth & Permissions" in wrong_kind.fix
    assert bad_url.found.startswith("SLACK_API_URL: should be an http(s) URL") and "README" in bad_url.fix


def test_a_failed_check_prints_its_fix_under_it() -> None:
    config = read_config({"ANTHROPIC_API_KEY": "k"})
    assert format_check(check_signing_secret(config)) == (
        "✗ Slack signing secret: SLACK_SIGNING_SECRET is not set; HTTP mode needs it "
        "(it verifies that requests to /slack/events come from Slack)\n"
        "    fix: copy the Signing Secret from Basic Information → App Credentials into SLACK_SIGNING_SECRET"
    )


async def test_doctor_runs_as_a_command(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """The same, as a process of its own: ``python -m bot doctor`` (what ``slack-analyst doctor`` runs)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "doctor",
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env, "SLACK_APP_TOKEN": slack.app_token},
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stdout.decode() + stderr.decode()
    assert stdout.decode().endswith("All 10 checks passed.\n")
    slack.granted_scopes.discard("users:read")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "doctor",
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env},
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 1
    assert "✗ Slack scopes: missing users:read" in stdout.decode()


async def test_a_postgresql_database_is_checked_without_showing_its_password(
    tmp_path: Path, env: dict[str, str], claude: FakeAnthropic, doctor: Doctor, postgres_url: str
) -> None:
    url = postgres_url.replace("postgres@", "postgres:s3cret-pw@")  # the test server trusts its socket
    shown = url.replace("s3cret-pw", "***")
    status, output = await doctor({**env, "ANALYST_DB": url}, cwd=tmp_path)
    assert status == 0, output
    assert line(output, "database") == f"✓ database: {shown}: created, schema current (migration 4 of 4)"
    status, output = await doctor({**env, "ANALYST_DB": url}, cwd=tmp_path)
    assert (
        line(output, "database") == f"✓ database: {shown}: writable, schema current (migration 4 of 4), 0 runs recorded"
    )

    nowhere = f"postgresql://bot:s3cret-pw@/analyst?host={tmp_path / 'no-server-here'}"
    status, output = await doctor({**env, "ANALYST_DB": nowhere}, cwd=tmp_path)
    assert status == 1
    database = line(output, "database")
    assert database.startswith(
        f"✗ database: can't use postgresql://bot:***@/analyst?host={tmp_path / 'no-server-here'} ("
    )
    assert "check ANALYST_DB's host, port, user, password and database name" in database
    assert "s3cret-pw" not in output
