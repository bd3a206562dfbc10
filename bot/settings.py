"""Configuration from the environment.

Every setting the bot reads is declared here once, as a :class:`Setting` (variable,
default, parser, documentation), and parsed and checked at start-up. A missing or
malformed value raises :class:`SettingsError` naming the variable, which the CLI prints
as one line instead of a traceback. README's configuration table and ``.env.example``
are generated from these declarations by ``scripts/settings-docs``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, Generic, Literal, TypeVar, cast
from urllib.parse import urlparse

from bot.db import DEFAULT_POOL_SIZE, DatabaseTarget, database_target, is_postgres_url
from bot.limiter import ADAPTIVE_MAX_WIDTH, START_WIDTH, TELL_AFTER_S

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_DB = "./data/analyst.db"
# docs: build-with-claude/files — the Files API (and container_upload blocks that reference
# its files) needs this beta header; the installed SDK's ``client.files`` does not send it.
FILES_API_BETA = "files-api-2025-04-14"


@dataclass(frozen=True)
class CodeExecutionTool:
    """One version of Anthropic's code-execution tool and what calling it needs."""

    type: str
    beta: str | None  # the anthropic-beta header this version needs, if any

    @property
    def definition(self) -> dict[str, str]:
        return {"type": self.type, "name": "code_execution"}

    @property
    def version(self) -> str:
        return self.type.removeprefix("code_execution_")

    @property
    def runs_bash(self) -> bool:
        """Bash + file editing (2025-08-25 on); 2025-05-22 runs Python only."""
        return self.version >= "20250825"


CODE_EXECUTION_TOOLS: dict[str, CodeExecutionTool] = {
    tool.type: tool
    for tool in (
        CodeExecutionTool("code_execution_20250522", beta="code-execution-2025-05-22"),
        CodeExecutionTool("code_execution_20250825", beta=None),
        CodeExecutionTool("code_execution_20260120", beta=None),
        CodeExecutionTool("code_execution_20260521", beta=None),
    )
}
DEFAULT_CODE_EXECUTION = "code_execution_20260521"
# Anthropic's document skills, loaded into the container on request.
ANTHROPIC_SKILLS = ("xlsx", "pptx", "docx", "pdf")

# Server-side web tools. docs: agents-and-tools/tool-use/web-search-tool — the _20260209 and
# later versions (dynamic filtering) "require code_execution_20260120 or later"; with an older
# code-execution version the bot uses the versions before them (anthropic 2.17's
# types/web_search_tool_*_param.py and web_fetch_tool_*_param.py list which exist).
WEB_SEARCH_TOOL, WEB_FETCH_TOOL = "web_search_20260318", "web_fetch_20260318"
LEGACY_WEB_SEARCH_TOOL, LEGACY_WEB_FETCH_TOOL = "web_search_20250305", "web_fetch_20250910"
WEB_TOOLS_MIN_CODE_EXECUTION = "20260120"

# ``output_config.effort`` (anthropic 2.17 types/output_config_param.py). High is the API's
# default on most models and suits multi-step analyses where a wrong figure costs more than
# a slower answer; it is sent explicitly so the bot behaves the same on every model.
EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")
DEFAULT_EFFORT = "high"
# Thinking tokens count toward max_tokens (docs: build-with-claude/thinking), so the limit must
# leave room for thinking as well as the answer; the models' output limit is 128K.
DEFAULT_MAX_TOKENS = 32_000
MIN_MAX_TOKENS, MAX_MAX_TOKENS = 4_096, 128_000


class SettingsError(Exception):
    """A setting is missing or malformed. ``str(error)`` is one line naming it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


class _Invalid(Exception):
    """A parser's complaint about a value; :meth:`Setting.read` adds the variable's name."""


T = TypeVar("T")

# The groups settings are documented in (.env.example's sections), in the order they are listed.
SLACK = "Slack (from your app's settings page)"
ANTHROPIC = "Anthropic"
ANALYST = "The analyst"
GUARDRAILS = "Guardrails"
DURABILITY = "Durability"
PROCESS = "The process (read by the command line)"
SECTIONS = (SLACK, ANTHROPIC, ANALYST, GUARDRAILS, DURABILITY, PROCESS)


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: how it is read, its default, and how it is documented.

    README's configuration table and ``.env.example`` are generated from these
    (``bot/settings_docs.py``, ``scripts/settings-docs``); a test fails when they drift.
    """

    env: str
    default: T  # what an unset or blank variable means (never used when ``required``)
    parse: Callable[[str], T]  # the stripped, non-empty value to its meaning; raises _Invalid
    doc: str  # README's "Meaning" column (Markdown, one line)
    section: str  # one of SECTIONS: where README and .env.example list it
    note: str | None = None  # .env.example's comment above it; None: ``doc`` without Markdown; "": none
    example: str | None = None  # the value .env.example shows; None: the default
    active: bool = False  # .env.example sets it (a value to fill in) rather than showing it commented out
    shown_default: str | None = None  # README's "Default" column; None: the default as written in .env
    required: bool | Literal["slack"] = False  # "slack": required when the Slack credentials are

    def read(self, env: Mapping[str, str], *, slack: bool = True) -> T:
        """This variable's value in ``env``; :class:`SettingsError` names it if it is bad."""
        value = env.get(self.env, "").strip()
        if not value:
            if self.required is True or (self.required == "slack" and slack):
                raise SettingsError(self.env, "is not set")
            return self.default
        try:
            return self.parse(value)
        except _Invalid as problem:
            raise SettingsError(self.env, str(problem)) from None


_SETTING = "setting"  # the key of a Settings field's metadata that holds its Setting


def _declare(setting: Setting[T]) -> T:
    """A :class:`Settings` field read through ``setting`` (kept in the field's metadata)."""
    if setting.required is True:  # no default: Settings(...) must be given it
        return cast(T, field(metadata={_SETTING: setting}))
    return field(default=setting.default, metadata={_SETTING: setting})


def _listed(items: Iterable[str]) -> str:
    """Items quoted as code and joined for a sentence: `a`, `b` or `c`."""
    quoted = [f"`{item}`" for item in items]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else "".join(quoted)


# ---------------------------------------------------------------------------------- parsers
# Each takes the variable's stripped, non-empty value and returns what it means, or raises
# _Invalid with the problem (Setting.read prefixes the variable's name).


def _text(value: str) -> str:
    return value


def _token(prefix: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if not value.startswith(prefix):
            raise _Invalid(f"should start with {prefix!r}")
        return value

    return parse


def _url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise _Invalid(f"should be an http(s) URL, got {value!r}")
    return value


def _base_url(value: str) -> str:
    """An http(s) URL that relative paths are joined to: it ends in a slash."""
    url = _url(value)
    return url if url.endswith("/") else url + "/"


def _number(*, allow_zero: bool = False) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise _Invalid(f"should be a number, got {value!r}") from None
        if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
            raise _Invalid(f"should be a positive number, got {value!r}")
        return number

    return parse


def _integer(*, minimum: int = 1) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise _Invalid(f"should be a whole number, got {value!r}") from None
        if number < minimum:
            raise _Invalid(f"should be a whole number of at least {minimum}, got {value!r}")
        return number

    return parse


def _ceiling(value: str) -> int | None:
    """``adaptive`` (None: no ceiling but the limiter's own) or a whole number of at least 1."""
    if value.lower() == "adaptive":
        return None
    try:
        return _integer()(value)
    except _Invalid:
        raise _Invalid(f"should be adaptive or a whole number of at least 1, got {value!r}") from None


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise _Invalid(f"should be a TCP port number, got {value!r}")
    return port


def _ids(value: str) -> frozenset[str]:
    """A comma-separated list of Slack ids (users U…/W…, channels C…/G…/D…)."""
    ids = [part.strip() for part in value.split(",") if part.strip()]
    for item in ids:
        if not re.fullmatch(r"[UWCGD][A-Z0-9]{2,}", item):
            raise _Invalid(f"{item!r} is not a Slack user or channel id (like U0123ABCD or C0123ABCD)")
    return frozenset(ids)


def _boolean(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise _Invalid(f"should be true or false, got {value!r}")


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.lower() not in choices:
            raise _Invalid(f"should be one of {', '.join(choices)}, got {value!r}")
        return value.lower()

    return parse


def _skills(value: str) -> tuple[str, ...]:
    skills = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    unknown = [skill for skill in skills if skill not in ANTHROPIC_SKILLS]
    if unknown:
        raise _Invalid(f"unknown skill {unknown[0]!r}; use any of {', '.join(ANTHROPIC_SKILLS)}")
    return skills


def _code_execution(value: str) -> CodeExecutionTool:
    key = value if value.startswith("code_execution_") else f"code_execution_{value}"
    try:
        return CODE_EXECUTION_TOOLS[key]
    except KeyError:
        known = ", ".join(sorted(CODE_EXECUTION_TOOLS))
        raise _Invalid(f"unknown tool version {value!r}; use one of {known}") from None


# ---------------------------------------------------------------------------------- declarations
# One per variable the bot reads. Settings (below) has a field for each but the last four, which
# the command line reads itself; README and .env.example list them all, by section.

ANTHROPIC_API_KEY = Setting(
    "ANTHROPIC_API_KEY",
    "",
    _text,
    required=True,
    section=ANTHROPIC,
    doc="Anthropic API key.",
    example="sk-ant-your-key",
    active=True,
)

ANTHROPIC_BASE_URL = Setting[str | None](
    "ANTHROPIC_BASE_URL",
    None,
    _url,
    section=ANTHROPIC,
    doc="Anthropic API base URL.",
    shown_default="the SDK's default",
    example="https://api.anthropic.com",
)

SLACK_BOT_TOKEN = Setting[str | None](
    "SLACK_BOT_TOKEN",
    None,
    _token("xoxb-"),
    required="slack",
    section=SLACK,
    doc="Bot User OAuth Token, `xoxb-…`.",
    note="Bot User OAuth Token (OAuth & Permissions).",
    example="xoxb-your-bot-token",
    active=True,
)

SLACK_SIGNING_SECRET = Setting[str | None](
    "SLACK_SIGNING_SECRET",
    None,
    _text,
    section=SLACK,
    doc="Verifies requests in HTTP mode (required there).",
    note="Signing Secret (Basic Information); needed when Slack delivers events over HTTP.",
    example="your-signing-secret",
    active=True,
)

SLACK_APP_TOKEN = Setting[str | None](
    "SLACK_APP_TOKEN",
    None,
    _token("xapp-"),
    section=SLACK,
    doc="App-level token, `xapp-…`; when set the bot uses Socket Mode unless `--http`.",
    note="App-Level Token with the connections:write scope. When set, the bot uses Socket Mode "
    "(no public URL needed) unless started with --http.",
    active=True,
)

SLACK_API_URL = Setting(
    "SLACK_API_URL",
    DEFAULT_SLACK_API_URL,
    _base_url,
    section=SLACK,
    doc="Slack Web API base used by every Slack client the bot makes (Bolt's too).",
    note="Slack Web API base URL; only change it to point the bot at a test double.",
)


def _database(value: str) -> DatabaseTarget:
    """An SQLite file, or a ``postgresql://`` URL (never echoed back: it may hold a password)."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value) and not is_postgres_url(value):
        raise _Invalid("should be an SQLite file path or a postgresql:// URL (another scheme was given)")
    return database_target(value)


ANALYST_DB = Setting(
    "ANALYST_DB",
    database_target(DEFAULT_DB),
    _database,
    section=ANALYST,
    doc="The database: run ledger, seen events, uploaded files, conversations. An SQLite file, or a "
    "`postgresql://user:password@host:5432/dbname` URL to keep them in PostgreSQL (several processes may share it).",
    note="The database: an SQLite file, or a postgresql://user:password@host:5432/dbname URL.",
)

ANALYST_DB_POOL_SIZE = Setting(
    "ANALYST_DB_POOL_SIZE",
    DEFAULT_POOL_SIZE,
    _integer(minimum=2),
    section=ANALYST,
    doc="PostgreSQL only: the most connections this process keeps open to the database. Each replica has its "
    "own pool, so replicas × this must stay within the server's `max_connections` (or your pooler's limit).",
    note="PostgreSQL only: the most database connections this process keeps open.",
)

ANALYST_MODEL = Setting(
    "ANALYST_MODEL",
    DEFAULT_MODEL,
    _text,
    section=ANALYST,
    doc="Model that analyses.",
    note="Claude model to analyse with.",
)

ANALYST_CODE_EXECUTION = Setting(
    "ANALYST_CODE_EXECUTION",
    CODE_EXECUTION_TOOLS[DEFAULT_CODE_EXECUTION],
    _code_execution,
    section=ANALYST,
    doc="Code execution tool version: `20260521`, `20260120`, `20250825` (bash + file editing) or "
    "`20250522` (Python only; the bot sends its beta header). With "
    f"`{WEB_TOOLS_MIN_CODE_EXECUTION}` or later the web tools are `{WEB_SEARCH_TOOL}`/`{WEB_FETCH_TOOL}`; "
    f"with older versions `{LEGACY_WEB_SEARCH_TOOL}`/`{LEGACY_WEB_FETCH_TOOL}`.",
    note="Code execution tool version: 20260521, 20260120, 20250825 (bash + files), or 20250522 "
    "(Python only). Web tools and skills follow it: skills need 20250825 or later.",
)

ANALYST_MAX_FILE_MB = Setting(
    "ANALYST_MAX_FILE_MB",
    100.0,
    _number(),
    section=ANALYST,
    doc="Largest file accepted. Larger files are refused before download (and a file that turns "
    "out larger than Slack said is cut off mid-download).",
    note="Largest file accepted, in MB; larger ones are refused before download.",
)

ANALYST_MAX_TOKENS = Setting(
    "ANALYST_MAX_TOKENS",
    DEFAULT_MAX_TOKENS,
    _integer(minimum=MIN_MAX_TOKENS),
    section=ANALYST,
    doc=f"`max_tokens` of each API call, `{MIN_MAX_TOKENS}`–`{MAX_MAX_TOKENS}`. Claude's thinking "
    "counts toward it, so it leaves room for thinking as well as the answer.",
    note=f"max_tokens per API call ({MIN_MAX_TOKENS}-{MAX_MAX_TOKENS}; thinking counts toward it).",
)

ANALYST_EFFORT = Setting(
    "ANALYST_EFFORT",
    DEFAULT_EFFORT,
    _choice(EFFORT_LEVELS),
    section=ANALYST,
    doc=f"How much effort Claude spends (`output_config.effort`): {_listed(EFFORT_LEVELS)}. "
    f"`{DEFAULT_EFFORT}` suits multi-step analyses where a wrong figure costs more than a slower answer; "
    "sent to models that accept it. Thinking itself is set per model (adaptive on current models).",
    note=f"Effort Claude spends: {_listed(EFFORT_LEVELS).replace('`', '')}.",
)

ANALYST_MAX_CONTINUATIONS = Setting(
    "ANALYST_MAX_CONTINUATIONS",
    8,
    _integer(),
    section=ANALYST,
    doc="How often a paused turn (`pause_turn`) is continued before the bot stops and says so.",
)

ANALYST_MAX_OUTPUT_FILES = Setting(
    "ANALYST_MAX_OUTPUT_FILES",
    10,
    _integer(),
    section=ANALYST,
    doc="Generated files posted per answer (charts first); the rest are named in a note.",
)

ANALYST_MAX_OUTPUT_FILE_MB = Setting(
    "ANALYST_MAX_OUTPUT_FILE_MB",
    50.0,
    _number(),
    section=ANALYST,
    doc="Largest generated file posted to Slack (uploads may take 30 s plus 2 s per MB).",
    note="Largest generated file posted to Slack, in MB (an upload may take 30 s plus 2 s per MB of "
    "it before it times out).",
)

ANALYST_NOTEBOOK = Setting(
    "ANALYST_NOTEBOOK",
    True,
    _boolean,
    section=ANALYST,
    doc="Attach `analysis.ipynb` to every answer that ran code: a Jupyter notebook of the steps with their "
    "output and charts, which reruns next to the data file (`ask --out` writes it too).",
    note="Attach analysis.ipynb (the steps, their output and charts; reruns next to the data file) to every "
    "answer that ran code.",
)

ANALYST_ANTHROPIC_MAX_RETRIES = Setting(
    "ANALYST_ANTHROPIC_MAX_RETRIES",
    4,
    _integer(minimum=0),
    section=ANTHROPIC,
    doc="Retries (with backoff) of a failed Anthropic call before a run fails: 5xx, dropped connections, and "
    "429/529 without `retry-after` (a 429/529 with one is waited out without using up a retry).",
    note="Retries (with backoff) of a failed Anthropic call before a run fails; a 429/529 with retry-after is "
    "waited out without using one up.",
)

ANALYST_HISTORY_MESSAGES = Setting(
    "ANALYST_HISTORY_MESSAGES",
    20,
    _integer(minimum=2),
    section=ANALYST,
    doc="Earlier messages (user + assistant) a follow-up replays.",
    note="Follow-ups replay at most this many earlier messages (user + assistant).",
)

ANALYST_HISTORY_TOKENS = Setting(
    "ANALYST_HISTORY_TOKENS",
    150_000,
    _integer(minimum=1_000),
    section=ANALYST,
    doc="About how many tokens of history a follow-up replays; older answers are shortened to "
    "their text, then the oldest exchanges dropped.",
    note="Follow-ups replay about this many tokens of history at most; older answers are shortened, "
    "then the oldest dropped.",
)

ANALYST_RECENT_FILES_HOURS = Setting(
    "ANALYST_RECENT_FILES_HOURS",
    24.0,
    _number(),
    section=ANALYST,
    doc="`/analyze` without a file link uses the caller's most recent share in the channel within this window.",
    note="/analyze without a file link uses the caller's latest share in the channel within this many hours.",
)

ANALYST_WEB_SEARCH_MAX_USES = Setting(
    "ANALYST_WEB_SEARCH_MAX_USES",
    0,
    _integer(minimum=0),
    section=ANALYST,
    doc="Adds Anthropic's web search tool, with this many searches per answer.",
    note="Optional web search alongside code execution: searches per answer (0 = off).",
    shown_default="`0` (off)",
)

ANALYST_WEB_FETCH_MAX_USES = Setting(
    "ANALYST_WEB_FETCH_MAX_USES",
    0,
    _integer(minimum=0),
    section=ANALYST,
    doc="Adds the web fetch tool, with this many fetches per answer.",
    note="Optional web fetch alongside code execution: fetches per answer (0 = off).",
    shown_default="`0` (off)",
)

ANALYST_SKILLS = Setting[tuple[str, ...]](
    "ANALYST_SKILLS",
    (),
    _skills,
    section=ANALYST,
    doc=f"Anthropic document skills to load into the sandbox: any of `{','.join(ANTHROPIC_SKILLS)}` "
    "(e.g. “turn this CSV into a formatted Excel workbook” then returns a real `.xlsx`). Needs a "
    "bash-capable `ANALYST_CODE_EXECUTION` (`20250825` or later).",
    note=f"Anthropic's document skills loaded into the sandbox (any of {','.join(ANTHROPIC_SKILLS)}); "
    "they need ANALYST_CODE_EXECUTION 20250825 or later.",
    example="xlsx",
)

ANALYST_RUNS_PER_HOUR = Setting(
    "ANALYST_RUNS_PER_HOUR",
    20,
    _integer(),
    section=GUARDRAILS,
    doc="Analyses one person may start per rolling hour.",
)

ANALYST_MAX_CONCURRENT_PER_USER = Setting(
    "ANALYST_MAX_CONCURRENT_PER_USER",
    1,
    _integer(),
    section=GUARDRAILS,
    doc="Analyses one person may have queued or running at once.",
)

ANALYST_DAILY_TOKENS_PER_USER = Setting(
    "ANALYST_DAILY_TOKENS_PER_USER",
    2_000_000,
    _integer(),
    section=GUARDRAILS,
    doc="Tokens per person per rolling 24 h: all input (cache reads and writes included) + output.",
)

ANALYST_DAILY_TOKENS_PER_WORKSPACE = Setting(
    "ANALYST_DAILY_TOKENS_PER_WORKSPACE",
    50_000_000,
    _integer(),
    section=GUARDRAILS,
    doc="The same tokens for the whole workspace per rolling 24 h.",
    note="Tokens for the whole workspace per rolling 24 h.",
)

ANALYST_MAX_CONCURRENT = Setting[int | None](
    "ANALYST_MAX_CONCURRENT",
    None,
    _ceiling,
    section=GUARDRAILS,
    doc=f"Most analyses this process runs at once: `adaptive` (start at {START_WIDTH}, narrow when Anthropic's "
    f"rate limits run low or it answers 429/529, widen again as they recover, up to {ADAPTIVE_MAX_WIDTH}) or a "
    "whole number as a hard ceiling. The rest wait in a queue; whoever waits more than "
    f"{TELL_AFTER_S:g} s is told their place, and again as it changes.",
    note="Most analyses this process runs at once: adaptive (follows Anthropic's rate limits) or a whole number "
    "as a hard ceiling.",
    example="adaptive",
    shown_default="`adaptive`",
)

ANALYST_ADMINS = Setting[frozenset[str]](
    "ANALYST_ADMINS",
    frozenset(),
    _ids,
    section=GUARDRAILS,
    doc="Comma-separated user ids: exempt from per-person limits, see top users in `/analyze usage`, "
    "may delete any reply with :x:.",
    example="U0123ABCD",
)

ANALYST_ALLOWED_CHANNELS = Setting[frozenset[str]](
    "ANALYST_ALLOWED_CHANNELS",
    frozenset(),
    _ids,
    section=GUARDRAILS,
    doc="Comma-separated channel ids where the bot works (DMs follow the user list only).",
    note="Comma-separated channel ids where the bot works (empty = every channel; DMs follow the user list only).",
    shown_default="— (every channel)",
)

ANALYST_ALLOWED_USERS = Setting[frozenset[str]](
    "ANALYST_ALLOWED_USERS",
    frozenset(),
    _ids,
    section=GUARDRAILS,
    doc="Comma-separated user ids allowed to use the bot.",
    note="Comma-separated user ids allowed to use the bot (empty = everyone).",
    shown_default="— (everyone)",
)

ANALYST_ALLOW_EXTERNAL = Setting(
    "ANALYST_ALLOW_EXTERNAL",
    False,
    _boolean,
    section=GUARDRAILS,
    doc="Serve people from other organisations (Slack Connect).",
    note="People from other organisations (Slack Connect) are refused unless this is true.",
)

ANALYST_MAX_QUESTION_CHARS = Setting(
    "ANALYST_MAX_QUESTION_CHARS",
    4_000,
    _integer(minimum=100),
    section=GUARDRAILS,
    doc="Longest question passed to Claude; longer ones are cut, with a note.",
)

ANALYST_FILE_TTL_HOURS = Setting(
    "ANALYST_FILE_TTL_HOURS",
    24.0,
    _number(),
    section=GUARDRAILS,
    doc="Files the bot uploaded and files the analysis generated are deleted from the Files API after "
    "this many hours (fractions allowed); uploads also carry this expiry at Anthropic when it is "
    "between 1 hour and 90 days.",
    note="Files the bot uploaded or the analysis generated are deleted from the Files API after this "
    "many hours (fractions allowed).",
)

ANALYST_SWEEP_INTERVAL_S = Setting(
    "ANALYST_SWEEP_INTERVAL_S",
    300.0,
    _number(),
    section=GUARDRAILS,
    doc="How often the retention sweep runs.",
    note="How often the retention sweep runs, in seconds.",
)

ANALYST_HISTORY_DAYS = Setting(
    "ANALYST_HISTORY_DAYS",
    30.0,
    _number(),
    section=GUARDRAILS,
    doc="Conversations idle this long are deleted.",
    note="Conversation history is deleted after this many days without activity.",
)

ANALYST_RESUME_MAX_AGE_S = Setting(
    "ANALYST_RESUME_MAX_AGE_S",
    3600.0,
    _number(allow_zero=True),
    section=DURABILITY,
    doc="On start-up, runs a previous process left unfinished are resumed if younger than this, else "
    "marked failed with a message in their thread.",
    note="Unfinished runs found at start-up are resumed if younger than this (seconds), else failed with a note.",
)

ANALYST_LEASE_S = Setting(
    "ANALYST_LEASE_S",
    30.0,
    _number(),
    section=DURABILITY,
    doc="How long a process's claim on a run (its lease) lasts unless renewed. Each process renews the "
    "leases of its runs every third of this (at most every second); a run whose lease expired — its "
    "process crashed — is taken over by another process (or the next start). Replicas on one database "
    "must use the same value.",
    note="Seconds a run's lease lasts unless its process renews it; an expired one is taken over.",
)

ANALYST_SHUTDOWN_GRACE_S = Setting(
    "ANALYST_SHUTDOWN_GRACE_S",
    60.0,
    _number(allow_zero=True),
    section=DURABILITY,
    doc="On SIGTERM/SIGINT, how long running analyses may take to finish before they are recorded as "
    "interrupted (and resumed by the next start).",
    note="On SIGTERM/SIGINT, running analyses get this long (seconds) to finish before they are "
    "recorded as interrupted.",
)

ANALYST_RUN_DEADLINE_S = Setting(
    "ANALYST_RUN_DEADLINE_S",
    1200.0,
    _number(),
    section=DURABILITY,
    doc="Longest an analysis may run before it is stopped with a message.",
    note="Longest an analysis may run (seconds).",
)

# Read by bot/cli.py before Settings exist.
ANALYST_LOG_LEVEL = Setting(
    "ANALYST_LOG_LEVEL",
    "INFO",
    _text,
    section=PROCESS,
    doc="Log level (also `--log-level`).",
    note="Log level (DEBUG, INFO, WARNING); --log-level wins.",
)

PORT = Setting(
    "PORT",
    3000,
    _port,
    section=PROCESS,
    doc="HTTP port when `--port` isn't given.",
    note="HTTP mode listens on this port unless --port is given.",
)

ANALYST_LOG_FORMAT = Setting(
    "ANALYST_LOG_FORMAT",
    "json",
    _choice(("json", "text")),
    section=PROCESS,
    doc="`json`: one JSON object per log line, with `run_id`, `channel` and `user` during a run; `text`: "
    "lines for people (also `--log-format`).",
    note="json (one object per line) or text; --log-format wins.",
)

ANALYST_METRICS_PORT = Setting(
    "ANALYST_METRICS_PORT",
    9091,
    _port,
    section=PROCESS,
    doc="Socket Mode only: the port serving `/metrics` and `/healthz` (HTTP mode serves both on `PORT`); "
    "`0` turns it off.",
    note="Socket Mode serves /metrics and /healthz on this port (HTTP mode: on PORT); 0 turns it off.",
)


@dataclass(frozen=True)
class Settings:
    """Everything the bot is configured with. Build it with :meth:`from_env`.

    Each field is read through its variable's :class:`Setting` (default, parser,
    documentation), in field order, so the first bad variable is the one reported.
    """

    anthropic_api_key: str = _declare(ANTHROPIC_API_KEY)
    anthropic_base_url: str | None = _declare(ANTHROPIC_BASE_URL)
    slack_bot_token: str | None = _declare(SLACK_BOT_TOKEN)
    slack_signing_secret: str | None = _declare(SLACK_SIGNING_SECRET)
    slack_app_token: str | None = _declare(SLACK_APP_TOKEN)
    slack_api_url: str = _declare(SLACK_API_URL)
    db_path: DatabaseTarget = _declare(ANALYST_DB)  # noqa: RUF009 (_declare returns a dataclasses.field)
    db_pool_size: int = _declare(ANALYST_DB_POOL_SIZE)
    model: str = _declare(ANALYST_MODEL)
    code_execution: CodeExecutionTool = _declare(ANALYST_CODE_EXECUTION)  # noqa: RUF009 (as above)
    max_file_mb: float = _declare(ANALYST_MAX_FILE_MB)
    max_tokens: int = _declare(ANALYST_MAX_TOKENS)
    effort: str = _declare(ANALYST_EFFORT)
    max_continuations: int = _declare(ANALYST_MAX_CONTINUATIONS)
    max_output_files: int = _declare(ANALYST_MAX_OUTPUT_FILES)
    max_output_file_mb: float = _declare(ANALYST_MAX_OUTPUT_FILE_MB)
    notebook: bool = _declare(ANALYST_NOTEBOOK)
    anthropic_max_retries: int = _declare(ANALYST_ANTHROPIC_MAX_RETRIES)
    history_max_messages: int = _declare(ANALYST_HISTORY_MESSAGES)
    history_max_tokens: int = _declare(ANALYST_HISTORY_TOKENS)
    recent_files_hours: float = _declare(ANALYST_RECENT_FILES_HOURS)
    web_search_max_uses: int = _declare(ANALYST_WEB_SEARCH_MAX_USES)
    web_fetch_max_uses: int = _declare(ANALYST_WEB_FETCH_MAX_USES)
    skills: tuple[str, ...] = _declare(ANALYST_SKILLS)
    # Guardrails: quotas (per user and workspace), access and retention.
    runs_per_hour: int = _declare(ANALYST_RUNS_PER_HOUR)
    max_concurrent_per_user: int = _declare(ANALYST_MAX_CONCURRENT_PER_USER)
    daily_tokens_per_user: int = _declare(ANALYST_DAILY_TOKENS_PER_USER)
    daily_tokens_per_workspace: int = _declare(ANALYST_DAILY_TOKENS_PER_WORKSPACE)
    max_concurrent: int | None = _declare(ANALYST_MAX_CONCURRENT)
    admins: frozenset[str] = _declare(ANALYST_ADMINS)
    allowed_channels: frozenset[str] = _declare(ANALYST_ALLOWED_CHANNELS)
    allowed_users: frozenset[str] = _declare(ANALYST_ALLOWED_USERS)
    allow_external: bool = _declare(ANALYST_ALLOW_EXTERNAL)
    max_question_chars: int = _declare(ANALYST_MAX_QUESTION_CHARS)
    file_ttl_hours: float = _declare(ANALYST_FILE_TTL_HOURS)
    sweep_interval_s: float = _declare(ANALYST_SWEEP_INTERVAL_S)
    history_days: float = _declare(ANALYST_HISTORY_DAYS)
    # Durability: how old an interrupted run may be to resume, shutdown grace, per-run deadline.
    resume_max_age_s: float = _declare(ANALYST_RESUME_MAX_AGE_S)
    shutdown_grace_s: float = _declare(ANALYST_SHUTDOWN_GRACE_S)
    lease_s: float = _declare(ANALYST_LEASE_S)
    run_deadline_s: float = _declare(ANALYST_RUN_DEADLINE_S)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @property
    def max_output_file_bytes(self) -> int:
        return int(self.max_output_file_mb * 1024 * 1024)

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, slack: bool = True, http: bool = False) -> Settings:
        """Read the settings from ``env``.

        ``slack`` says whether the Slack credentials are required (the terminal ``ask``
        command needs none); ``http`` whether the bot will receive events over HTTP, which
        needs the signing secret (Socket Mode needs the app-level token instead).
        """
        values: dict[str, Any] = {item.name: declared(item).read(env, slack=slack) for item in fields(cls)}
        settings = cls(**values)
        if settings.max_tokens > MAX_MAX_TOKENS:
            raise SettingsError(
                "ANALYST_MAX_TOKENS",
                f"should be at most {MAX_MAX_TOKENS} (the models' output limit), got {settings.max_tokens}",
            )
        if settings.skills and not settings.code_execution.runs_bash:
            raise SettingsError(
                "ANALYST_SKILLS",
                f"skills need a code execution version that runs bash (20250825 or later), "
                f"but ANALYST_CODE_EXECUTION is {settings.code_execution.version}",
            )
        if slack and http and not settings.slack_signing_secret:
            raise SettingsError(
                "SLACK_SIGNING_SECRET", "is required to receive events over HTTP (or set SLACK_APP_TOKEN)"
            )
        return settings

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def web_tool_types(self) -> tuple[str, str]:
        """(web search, web fetch) tool types that work with the configured code-execution version."""
        if self.code_execution.version >= WEB_TOOLS_MIN_CODE_EXECUTION:
            return WEB_SEARCH_TOOL, WEB_FETCH_TOOL
        return LEGACY_WEB_SEARCH_TOOL, LEGACY_WEB_FETCH_TOOL


def declared(item: Field[Any]) -> Setting[Any]:
    """The :class:`Setting` a :class:`Settings` field is read through."""
    return cast(Setting[Any], item.metadata[_SETTING])


# Every variable the bot reads: Settings' fields in order, then the command line's.
SETTINGS: tuple[Setting[Any], ...] = (
    *(declared(item) for item in fields(Settings)),
    ANALYST_LOG_LEVEL,
    PORT,
    ANALYST_LOG_FORMAT,
    ANALYST_METRICS_PORT,
)
