"""``slack-analyst doctor``: checks an installation, one line per check, with the fix for each failure.

Every check is a plain async (or pure) function returning a :class:`Check`; :func:`diagnose`
runs them in order and the CLI prints each as it arrives. Settings are read the way ``serve``
reads them, except that a bad variable doesn't stop the doctor: it is reported on the line of
the check it belongs to and replaced by its default, so every other check still runs.

Slack is called over plain HTTP (``auth.test``, ``apps.connections.open`` and the Socket Mode
WebSocket); Anthropic through the bot's own client (``models.retrieve``, ``files.list``) and,
with ``--live``, the same engine as ``ask``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import anthropic

from bot.clients import anthropic_client
from bot.db import DatabaseUnavailable, describe_target
from bot.engine import Engine, InputFile, Job
from bot.files_api import FilesApi, digest_file
from bot.progress import Done, Failed
from bot.schema import MigrationError
from bot.settings import Settings, SettingsError
from bot.store import Store

Status = Literal["ok", "fail", "skip"]
SYMBOLS: dict[Status, str] = {"ok": "✓", "fail": "✗", "skip": "–"}

#: The bot scopes manifest.yml asks for (tests/test_doctor.py keeps the two the same). Kept
#: here rather than read from manifest.yml, which an installed package doesn't ship.
BOT_SCOPES: tuple[str, ...] = (
    "app_mentions:read",
    "assistant:write",
    "commands",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",
    "files:read",
    "files:write",
    "reactions:read",
    "reactions:write",
    "users:read",
)
# docs: build-with-claude/files — the Files API is in beta: "anthropic-beta: files-api-2025-04-14".
FILES_API_BETA = "files-api-2025-04-14"
#: Seconds any one network check may take.
CHECK_TIMEOUT_S = 30.0
#: The --live analysis: a 3-row table and a question code answers in one step.
LIVE_CSV = "region,orders,revenue\nNorth,12,340.50\nSouth,7,198.00\nEast,9,260.25\n"
LIVE_QUESTION = "How many rows does this table have, and what is its total revenue? Answer in one sentence."
LIVE_DEADLINE_S = 300.0

SLACK_VARIABLES = ("SLACK_BOT_TOKEN", "SLACK_API_URL")
ANTHROPIC_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
TOOL_VARIABLES = (
    "ANALYST_CODE_EXECUTION",
    "ANALYST_WEB_SEARCH_MAX_USES",
    "ANALYST_WEB_FETCH_MAX_USES",
    "ANALYST_SKILLS",
)
OWNED_VARIABLES = frozenset(
    (
        *SLACK_VARIABLES,
        *ANTHROPIC_VARIABLES,
        *TOOL_VARIABLES,
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
        "ANALYST_MODEL",
    )
)
FIX_SETTING = "correct it in .env (README → Configuration lists every setting)"


@dataclass(frozen=True)
class Check:
    """One line of the checklist: what was checked, what was found, and the fix if it failed."""

    name: str
    status: Status
    found: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def ok(name: str, found: str) -> Check:
    return Check(name, "ok", found)


def fail(name: str, found: str, fix: str) -> Check:
    return Check(name, "fail", found, fix)


def skip(name: str, found: str) -> Check:
    return Check(name, "skip", found)


def format_check(check: Check) -> str:
    line = f"{SYMBOLS[check.status]} {check.name}: {check.found}"
    return f"{line}\n    fix: {check.fix}" if check.fix else line


def format_summary(checks: list[Check]) -> str:
    failed = sum(check.failed for check in checks)
    if failed:
        return f"{failed} of {len(checks)} checks failed."
    return f"All {len(checks)} checks passed." if all(c.status == "ok" for c in checks) else "No check failed."


# ---------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Config:
    """The settings as far as they could be read, and what was wrong with the rest."""

    settings: Settings
    problems: Mapping[str, SettingsError] = field(default_factory=dict)
    http: bool = False  # events arrive over HTTP (no app token, or --http)

    def problem(self, *names: str) -> SettingsError | None:
        return next((self.problems[name] for name in names if name in self.problems), None)


def read_config(env: Mapping[str, str], *, http: bool = False) -> Config:
    """Read the settings like ``serve`` does, collecting every bad variable instead of
    stopping at the first: a malformed one falls back to its default, a missing required
    one to a placeholder (its checks then report it instead of calling out)."""
    working = dict(env)
    problems: dict[str, SettingsError] = {}
    while True:
        try:
            settings = Settings.from_env(working, slack=False)
        except SettingsError as error:
            if error.name in problems:  # its fallback is refused too: nothing more to learn
                raise
            problems[error.name] = error
            if working.get(error.name, "").strip():
                del working[error.name]
            else:
                working[error.name] = "unset"
            continue
        return Config(settings, problems, http=http or not env.get("SLACK_APP_TOKEN", "").strip())


def check_settings(config: Config) -> Check:
    """Every setting no other check reports on."""
    mode = "HTTP mode" if config.http else "Socket Mode"
    others = [str(error) for name, error in config.problems.items() if name not in OWNED_VARIABLES]
    if others:
        return fail("settings", "; ".join(others), FIX_SETTING)
    return ok("settings", f"readable; the bot will receive events in {mode}")


# ---------------------------------------------------------------------------------- Slack


@dataclass(frozen=True)
class SlackAnswer:
    body: dict[str, Any]
    scopes: frozenset[str] | None  # from x-oauth-scopes, when Slack sent it


class SlackUnreachable(Exception):
    pass


async def call_slack(session: aiohttp.ClientSession, api_url: str, method: str, token: str) -> SlackAnswer:
    """One Web API call; raises :class:`SlackUnreachable` when no JSON answer came back."""
    try:
        async with session.post(api_url + method, headers={"Authorization": f"Bearer {token}"}) as response:
            if response.status != 200:
                raise SlackUnreachable(f"{api_url}{method} answered HTTP {response.status}")
            body = await response.json(content_type=None)
            header = response.headers.get("x-oauth-scopes")
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        raise SlackUnreachable(f"could not reach {api_url}{method} ({error or type(error).__name__})") from error
    if not isinstance(body, dict):
        raise SlackUnreachable(f"{api_url}{method} did not answer with JSON")
    scopes = frozenset(s.strip() for s in header.split(",") if s.strip()) if header is not None else None
    return SlackAnswer(body, scopes)


UNREACHABLE_FIX = "check the network (a proxy or firewall?) and SLACK_API_URL"


async def check_bot_token(config: Config, session: aiohttp.ClientSession) -> tuple[Check, frozenset[str] | None]:
    """``auth.test`` with the bot token; also returns the scopes Slack says the token has."""
    name = "Slack bot token"
    token = config.settings.slack_bot_token
    where_to_find = "copy the Bot User OAuth Token (xoxb-…) from OAuth & Permissions into SLACK_BOT_TOKEN"
    if (problem := config.problem(*SLACK_VARIABLES)) is not None:
        return fail(name, str(problem), where_to_find if problem.name == "SLACK_BOT_TOKEN" else FIX_SETTING), None
    if token is None:
        return fail(name, "SLACK_BOT_TOKEN is not set", where_to_find), None
    try:
        answer = await call_slack(session, config.settings.slack_api_url, "auth.test", token)
    except SlackUnreachable as error:
        return fail(name, str(error), UNREACHABLE_FIX), None
    body = answer.body
    if not body.get("ok"):
        return fail(
            name,
            f"Slack refused it ({body.get('error', 'no error code')})",
            "copy the Bot User OAuth Token (xoxb-…) again from OAuth & Permissions; "
            "if the app was uninstalled, reinstall the app from manifest.yml",
        ), None
    return ok(name, f"@{body.get('user')} in {body.get('team')} ({body.get('team_id')})"), answer.scopes


def check_scopes(granted: frozenset[str] | None, required: tuple[str, ...] = BOT_SCOPES) -> Check:
    """The bot token's scopes against the bot scopes in manifest.yml. Pure."""
    name = "Slack scopes"
    if granted is None:
        return skip(name, "not checked: Slack did not report the token's scopes")
    missing = [scope for scope in required if scope not in granted]
    if missing:
        return fail(
            name,
            f"missing {', '.join(missing)}",
            "reinstall the app from manifest.yml (app settings → Install App → Reinstall to Workspace), "
            "then copy the new bot token into SLACK_BOT_TOKEN",
        )
    return ok(name, f"all {len(required)} bot scopes in manifest.yml granted")


async def check_socket_mode(config: Config, session: aiohttp.ClientSession) -> Check:
    """The app token opens a Socket Mode connection and Slack says hello on it."""
    name = "Socket Mode"
    new_app_level = (
        "under Basic Information → App-Level Tokens, generate a token with connections:write "
        "and put it (xapp-…) in SLACK_APP_TOKEN"
    )
    if (problem := config.problem("SLACK_APP_TOKEN")) is not None:
        return fail(name, str(problem), new_app_level)
    token = config.settings.slack_app_token
    if token is None:
        return skip(name, "not used: SLACK_APP_TOKEN is not set, so events arrive over HTTP")
    if (problem := config.problem("SLACK_API_URL")) is not None:
        return fail(name, str(problem), FIX_SETTING)
    try:
        answer = await call_slack(session, config.settings.slack_api_url, "apps.connections.open", token)
    except SlackUnreachable as error:
        return fail(name, str(error), UNREACHABLE_FIX)
    body = answer.body
    if not body.get("ok") or not isinstance(body.get("url"), str):
        return fail(name, f"Slack refused the app token ({body.get('error', 'no error code')})", new_app_level)
    try:
        async with session.ws_connect(body["url"], heartbeat=None) as socket:
            frame = await socket.receive_json(timeout=CHECK_TIMEOUT_S)
    except (aiohttp.ClientError, TimeoutError, ValueError, TypeError) as error:
        return fail(
            name,
            f"the app token works but the WebSocket didn't open ({error or type(error).__name__})",
            "allow outgoing WebSocket (wss://) connections to Slack, or use HTTP mode (README → Run the bot)",
        )
    if not isinstance(frame, dict) or frame.get("type") != "hello":
        return fail(
            name, f"Slack's first frame was not hello: {str(frame)[:80]}", "try again; if it persists, use HTTP mode"
        )
    suffix = " (not used with --http)" if config.http else ""
    return ok(name, f"connected and greeted by Slack{suffix}")


SIGNING_SECRET = re.compile(r"[0-9a-f]{32}")


def check_signing_secret(config: Config) -> Check:
    """Present and well-formed where it is needed: HTTP mode verifies every request with it. Pure."""
    name = "Slack signing secret"
    purpose = "verifies that requests to /slack/events come from Slack"
    where = "copy the Signing Secret from Basic Information → App Credentials into SLACK_SIGNING_SECRET"
    secret = config.settings.slack_signing_secret
    if secret is None:
        if config.http:
            return fail(name, f"SLACK_SIGNING_SECRET is not set; HTTP mode needs it (it {purpose})", where)
        return skip(name, "not needed in Socket Mode (in HTTP mode it " + purpose + ")")
    if SIGNING_SECRET.fullmatch(secret):
        return ok(name, f"set and well-formed (it {purpose})")
    if secret.startswith(("xox", "xapp-")):
        problem = "SLACK_SIGNING_SECRET holds a token, not the signing secret"
    elif secret.isalnum() and len(secret) == 24:
        problem = "SLACK_SIGNING_SECRET looks like the deprecated Verification Token"
    else:
        problem = f"SLACK_SIGNING_SECRET is not 32 hexadecimal characters (got {len(secret)} characters)"
    if not config.http:
        return fail(name, problem + " (unused in Socket Mode, but wrong)", where + ", or remove it")
    return fail(name, problem + f"; HTTP mode needs it (it {purpose})", where)


# ---------------------------------------------------------------------------------- Anthropic


@dataclass(frozen=True)
class AnthropicChecks:
    key: Check
    model: Check

    @property
    def usable(self) -> bool:
        return self.key.status == "ok" and self.model.status == "ok"


KEY_FIX = "create a key at console.anthropic.com → API keys and put it in ANTHROPIC_API_KEY"


def describe_status_error(error: anthropic.APIStatusError) -> str:
    return f"Anthropic answered {error.status_code}: {error.message}"


async def check_key_and_model(config: Config, claude: anthropic.AsyncAnthropic) -> AnthropicChecks:
    """``models.retrieve`` of ANALYST_MODEL: accepts the key (or not), and knows the model (or not)."""
    key_name, model_name = "Anthropic API key", "model"
    model = config.settings.model
    untested = skip(model_name, f"{model}: not checked without a working key")
    if (problem := config.problem(*ANTHROPIC_VARIABLES)) is not None:
        missing = problem.name == "ANTHROPIC_API_KEY"
        return AnthropicChecks(fail(key_name, str(problem), KEY_FIX if missing else FIX_SETTING), untested)
    try:
        info = await claude.models.retrieve(model)
    except anthropic.AuthenticationError as error:
        return AnthropicChecks(fail(key_name, f"refused ({error.message})", KEY_FIX), untested)
    except anthropic.PermissionDeniedError as error:
        return AnthropicChecks(fail(key_name, describe_status_error(error), KEY_FIX), untested)
    except anthropic.NotFoundError:
        return AnthropicChecks(
            ok(key_name, "accepted"),
            fail(
                model_name,
                f"{model} is not a model Anthropic knows (not found)",
                "set ANALYST_MODEL to a model id from Anthropic's models overview, or remove it for the default",
            ),
        )
    except anthropic.APIConnectionError as error:
        url = config.settings.anthropic_base_url or "the Anthropic API"
        found = f"could not reach {url} ({error.message})"
        return AnthropicChecks(fail(key_name, found, "check the network and ANTHROPIC_BASE_URL"), untested)
    except anthropic.APIStatusError as error:
        return AnthropicChecks(fail(key_name, describe_status_error(error), "try again in a minute"), untested)
    described = info.id if info.id == model else f"{model} → {info.id}"
    if info.lifecycle == "retired":
        return AnthropicChecks(
            ok(key_name, "accepted"),
            fail(model_name, f"{described} is retired", "set ANALYST_MODEL to a current model"),
        )
    note = " (deprecated: plan a move to a newer model)" if info.lifecycle == "deprecated" else ""
    return AnthropicChecks(ok(key_name, "accepted"), ok(model_name, f"{described} ({info.display_name}){note}"))


async def check_files_api(claude: anthropic.AsyncAnthropic, key: Check) -> Check:
    """The Files API answers a one-file listing."""
    name = "Files API"
    if key.status != "ok":
        return skip(name, "not checked without a working key")
    try:
        page = await claude.files.list(limit=1, extra_headers={"anthropic-beta": FILES_API_BETA})
    except anthropic.APIStatusError as error:
        return fail(
            name,
            describe_status_error(error),
            "the key's organisation needs access to the Files API; try again later if it's a 5xx",
        )
    except anthropic.APIConnectionError as error:
        return fail(name, f"could not reach it ({error.message})", "check the network and ANTHROPIC_BASE_URL")
    return ok(name, "reachable; " + ("files stored" if page.data else "no files stored yet"))


def check_tools(config: Config) -> Check:
    """The tool-version settings agree with each other (settings validation decides). Pure."""
    name = "tool versions"
    problems = [str(error) for variable, error in config.problems.items() if variable in TOOL_VARIABLES]
    if problems:
        return fail(name, "; ".join(problems), FIX_SETTING)
    settings = config.settings
    parts = [settings.code_execution.type]
    if settings.web_search_max_uses:
        parts.append(f"web search ×{settings.web_search_max_uses}")
    if settings.web_fetch_max_uses:
        parts.append(f"web fetch ×{settings.web_fetch_max_uses}")
    if settings.skills:
        parts.append("skills " + ", ".join(settings.skills))
    return ok(name, ", ".join(parts))


# ---------------------------------------------------------------------------------- database


class _ProbeWritten(Exception):
    """Raised inside the probe's transaction so that it rolls back."""


async def probe_write(store: Store) -> None:
    """Take the write lock and write a row, then roll it back: nothing stays behind."""
    try:
        async with store.database.transaction() as tx:
            await tx.execute("INSERT INTO events (key, received_at) VALUES (?, ?)", [f"doctor:{uuid.uuid4()}", ""])
            raise _ProbeWritten
    except _ProbeWritten:
        pass


async def check_database(config: Config) -> Check:
    """The database opens (created, or migrated to the current schema, as ``serve`` would) and
    takes a write; a database a newer release migrated further is reported."""
    target = config.settings.db_path
    shown = describe_target(target)
    name = "database"
    file_existed = target.exists() if isinstance(target, Path) else None
    store = Store(target, pool_size=config.settings.db_pool_size)
    refused: tuple[type[BaseException], ...] = (*store.database.errors, OSError, DatabaseUnavailable)
    try:
        await store.open()
        await probe_write(store)
        runs = await store.count_runs()
        schema = await store.schema_state()
    except MigrationError as error:
        return fail(
            name,
            f"{shown}: {error}",
            "back up the database and start from a fresh ANALYST_DB (the bot creates it), or repair the table named",
        )
    except refused as refusal:
        # Opening says what to check in a sentence of its own; here the hint follows, so the cause alone.
        cause = refusal.__cause__ if isinstance(refusal, DatabaseUnavailable) and refusal.__cause__ else refusal
        if isinstance(target, Path):
            return fail(
                name,
                f"can't write {shown} ({cause})",
                "set ANALYST_DB to a file in a directory this user can write (it is created on first start); "
                "if the file isn't an SQLite database, move it away",
            )
        return fail(
            name,
            f"can't use {shown} ({cause})",
            "check ANALYST_DB's host, port, user, password and database name: the server must be reachable "
            "and the user allowed to create tables in that database",
        )
    finally:
        await store.close()
    if schema.unknown:
        return fail(
            name,
            f"{shown}: made by a newer slack-analyst (its migrations {', '.join(schema.unknown)} are unknown here)",
            "upgrade slack-analyst to the release that last ran on this database, or point ANALYST_DB at another one",
        )
    existed = file_existed if file_existed is not None else store.migrated != schema.known
    current = f"schema current ({schema.describe()})"
    state = f"created, {current}" if not existed else f"writable, {current}, {runs} runs recorded"
    return ok(name, f"{shown}: {state}")


# ---------------------------------------------------------------------------------- --live


async def check_live(config: Config, claude: anthropic.AsyncAnthropic) -> Check:
    """One tiny real analysis on a 3-row CSV through the engine ``ask`` uses, and its cost.
    The files it uploads or generates are deleted afterwards."""
    name = "live analysis"
    settings = config.settings
    file_ids: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="analyst-doctor-") as scratch:
            csv = Path(scratch) / "doctor_check.csv"
            csv.write_text(LIVE_CSV)
            sha256, size, _ = digest_file(csv)
            async with Store(":memory:") as store:
                files = FilesApi(claude, store, ttl_seconds=3600)
                file_id = await files.ensure_uploaded(
                    csv, sha256=sha256, filename=csv.name, mime_type="text/csv", size=size
                )
            file_ids.append(file_id)
            outcome: Done | Failed | None = None
            async with asyncio.timeout(LIVE_DEADLINE_S):
                async for event in Engine(claude, settings).run(
                    Job(LIVE_QUESTION, [InputFile(file_id, csv.name, "csv", size)])
                ):
                    if isinstance(event, Done | Failed):
                        outcome = event
    except TimeoutError:
        return fail(name, f"no answer within {LIVE_DEADLINE_S:.0f} s", "try again; check status.anthropic.com")
    except anthropic.APIError as error:
        return fail(name, f"the API refused it ({error.message})", "see the lines above")
    finally:
        await _delete_files(claude, file_ids)
    if outcome is None:
        return fail(name, "the engine ended without an outcome", "report this as a bug")
    usage = outcome.usage
    cost_text = f"{usage.tokens:,} tokens, about ${usage.cost(settings.model):.4f}"
    if isinstance(outcome, Failed):
        return fail(name, f"{outcome.message} ({cost_text})", "see the lines above; the log has details")
    await _delete_files(claude, [f.file_id for f in outcome.files])
    if outcome.steps == 0:
        return fail(
            name,
            f"Claude answered without running code ({cost_text})",
            "check ANALYST_CODE_EXECUTION and that the model supports code execution",
        )
    return ok(name, f"answered in {outcome.steps} step{'s' if outcome.steps != 1 else ''}; cost: {cost_text}")


async def _delete_files(claude: anthropic.AsyncAnthropic, file_ids: list[str]) -> None:
    for file_id in file_ids:
        with contextlib.suppress(anthropic.APIError):
            await claude.files.delete(file_id, extra_headers={"anthropic-beta": FILES_API_BETA})
    file_ids.clear()


# ---------------------------------------------------------------------------------- all of it


async def diagnose(env: Mapping[str, str], *, http: bool = False, live: bool = False) -> AsyncIterator[Check]:
    """Every check, in checklist order."""
    config = read_config(env, http=http)
    yield check_settings(config)
    timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        token, scopes = await check_bot_token(config, session)
        yield token
        yield (
            check_scopes(scopes)
            if token.status == "ok"
            else skip("Slack scopes", "not checked without a working bot token")
        )
        yield await check_socket_mode(config, session)
    yield check_signing_secret(config)
    claude = anthropic_client(config.settings)
    try:
        quick = claude.with_options(max_retries=1, timeout=CHECK_TIMEOUT_S)
        anthropic_checks = await check_key_and_model(config, quick)
        yield anthropic_checks.key
        yield anthropic_checks.model
        files = await check_files_api(quick, anthropic_checks.key)
        yield files
        tools = check_tools(config)
        yield tools
        yield await check_database(config)
        if live:
            if anthropic_checks.usable and files.status == "ok" and tools.status == "ok":
                yield await check_live(config, claude)
            else:
                yield skip("live analysis", "not run: it needs a working key, model, Files API and tool settings")
    finally:
        await claude.close()
