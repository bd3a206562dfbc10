"""Configuration from the environment.

Every setting the bot reads is parsed and checked here, once, at start-up. A missing or
malformed value raises :class:`SettingsError` naming the variable, which the CLI prints
as one line instead of a traceback.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

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


@dataclass(frozen=True)
class Settings:
    """Everything the bot is configured with. Build it with :meth:`from_env`."""

    anthropic_api_key: str
    anthropic_base_url: str | None = None
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    db_path: Path = Path(DEFAULT_DB)
    model: str = DEFAULT_MODEL
    code_execution: CodeExecutionTool = CODE_EXECUTION_TOOLS[DEFAULT_CODE_EXECUTION]
    max_file_mb: float = 100.0
    max_tokens: int = DEFAULT_MAX_TOKENS
    effort: str = DEFAULT_EFFORT
    max_continuations: int = 8
    max_output_files: int = 10
    max_output_file_mb: float = 50.0
    anthropic_max_retries: int = 4
    history_max_messages: int = 20
    history_max_tokens: int = 150_000
    recent_files_hours: float = 24.0
    web_search_max_uses: int = 0
    web_fetch_max_uses: int = 0
    skills: tuple[str, ...] = ()
    # Guardrails: quotas (per user and workspace), access and retention.
    runs_per_hour: int = 20
    max_concurrent_per_user: int = 1
    daily_tokens_per_user: int = 2_000_000
    daily_tokens_per_workspace: int = 50_000_000
    max_concurrent: int = 4
    admins: frozenset[str] = frozenset()
    allowed_channels: frozenset[str] = frozenset()
    allowed_users: frozenset[str] = frozenset()
    allow_external: bool = False
    max_question_chars: int = 4_000
    file_ttl_hours: float = 24.0
    sweep_interval_s: float = 300.0
    history_days: float = 30.0
    # Durability: how old an interrupted run may be to resume, shutdown grace, per-run deadline.
    resume_max_age_s: float = 3600.0
    shutdown_grace_s: float = 60.0
    run_deadline_s: float = 1200.0

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
        reader = _Reader(env)
        settings = cls(
            anthropic_api_key=reader.required("ANTHROPIC_API_KEY"),
            anthropic_base_url=reader.url("ANTHROPIC_BASE_URL", default=None),
            slack_bot_token=reader.token("SLACK_BOT_TOKEN", "xoxb-", required=slack),
            slack_signing_secret=reader.optional("SLACK_SIGNING_SECRET"),
            slack_app_token=reader.token("SLACK_APP_TOKEN", "xapp-", required=False),
            slack_api_url=_with_trailing_slash(
                reader.url("SLACK_API_URL", default=DEFAULT_SLACK_API_URL) or DEFAULT_SLACK_API_URL
            ),
            db_path=Path(reader.optional("ANALYST_DB") or DEFAULT_DB),
            model=reader.optional("ANALYST_MODEL") or DEFAULT_MODEL,
            code_execution=reader.code_execution("ANALYST_CODE_EXECUTION"),
            max_file_mb=reader.number("ANALYST_MAX_FILE_MB", 100.0),
            max_tokens=reader.integer("ANALYST_MAX_TOKENS", DEFAULT_MAX_TOKENS, minimum=MIN_MAX_TOKENS),
            effort=reader.choice("ANALYST_EFFORT", DEFAULT_EFFORT, EFFORT_LEVELS),
            max_continuations=reader.integer("ANALYST_MAX_CONTINUATIONS", 8),
            max_output_files=reader.integer("ANALYST_MAX_OUTPUT_FILES", 10),
            max_output_file_mb=reader.number("ANALYST_MAX_OUTPUT_FILE_MB", 50.0),
            anthropic_max_retries=reader.integer("ANALYST_ANTHROPIC_MAX_RETRIES", 4, minimum=0),
            history_max_messages=reader.integer("ANALYST_HISTORY_MESSAGES", 20, minimum=2),
            history_max_tokens=reader.integer("ANALYST_HISTORY_TOKENS", 150_000, minimum=1_000),
            recent_files_hours=reader.number("ANALYST_RECENT_FILES_HOURS", 24.0),
            web_search_max_uses=reader.integer("ANALYST_WEB_SEARCH_MAX_USES", 0, minimum=0),
            web_fetch_max_uses=reader.integer("ANALYST_WEB_FETCH_MAX_USES", 0, minimum=0),
            skills=reader.skills("ANALYST_SKILLS"),
            runs_per_hour=reader.integer("ANALYST_RUNS_PER_HOUR", 20),
            max_concurrent_per_user=reader.integer("ANALYST_MAX_CONCURRENT_PER_USER", 1),
            daily_tokens_per_user=reader.integer("ANALYST_DAILY_TOKENS_PER_USER", 2_000_000),
            daily_tokens_per_workspace=reader.integer("ANALYST_DAILY_TOKENS_PER_WORKSPACE", 50_000_000),
            max_concurrent=reader.integer("ANALYST_MAX_CONCURRENT", 4),
            admins=reader.ids("ANALYST_ADMINS"),
            allowed_channels=reader.ids("ANALYST_ALLOWED_CHANNELS"),
            allowed_users=reader.ids("ANALYST_ALLOWED_USERS"),
            allow_external=reader.boolean("ANALYST_ALLOW_EXTERNAL", False),
            max_question_chars=reader.integer("ANALYST_MAX_QUESTION_CHARS", 4_000, minimum=100),
            file_ttl_hours=reader.number("ANALYST_FILE_TTL_HOURS", 24.0),
            sweep_interval_s=reader.number("ANALYST_SWEEP_INTERVAL_S", 300.0),
            history_days=reader.number("ANALYST_HISTORY_DAYS", 30.0),
            resume_max_age_s=reader.number("ANALYST_RESUME_MAX_AGE_S", 3600.0, allow_zero=True),
            shutdown_grace_s=reader.number("ANALYST_SHUTDOWN_GRACE_S", 60.0, allow_zero=True),
            run_deadline_s=reader.number("ANALYST_RUN_DEADLINE_S", 1200.0),
        )
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


def _with_trailing_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


class _Reader:
    """Parses individual variables, raising :class:`SettingsError` with the variable's name."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def optional(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise SettingsError(name, "is not set")
        return value

    def token(self, name: str, prefix: str, *, required: bool) -> str | None:
        value = self.required(name) if required else self.optional(name)
        if value is not None and not value.startswith(prefix):
            raise SettingsError(name, f"should start with {prefix!r}")
        return value

    def url(self, name: str, *, default: str | None) -> str | None:
        value = self.optional(name)
        if value is None:
            return default
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SettingsError(name, f"should be an http(s) URL, got {value!r}")
        return value

    def number(self, name: str, default: float, *, allow_zero: bool = False) -> float:
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(name, f"should be a number, got {value!r}") from None
        if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
            raise SettingsError(name, f"should be a positive number, got {value!r}")
        return number

    def integer(self, name: str, default: int, *, minimum: int = 1) -> int:
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(name, f"should be a whole number, got {value!r}") from None
        if number < minimum:
            raise SettingsError(name, f"should be a whole number of at least {minimum}, got {value!r}")
        return number

    def ids(self, name: str) -> frozenset[str]:
        """A comma-separated list of Slack ids (users U…/W…, channels C…/G…/D…)."""
        value = self.optional(name)
        if value is None:
            return frozenset()
        ids = [part.strip() for part in value.split(",") if part.strip()]
        for item in ids:
            if not re.fullmatch(r"[UWCGD][A-Z0-9]{2,}", item):
                raise SettingsError(name, f"{item!r} is not a Slack user or channel id (like U0123ABCD or C0123ABCD)")
        return frozenset(ids)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.optional(name)
        if value is None:
            return default
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(name, f"should be true or false, got {value!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.optional(name)
        if value is None:
            return default
        if value.lower() not in choices:
            raise SettingsError(name, f"should be one of {', '.join(choices)}, got {value!r}")
        return value.lower()

    def skills(self, name: str) -> tuple[str, ...]:
        value = self.optional(name)
        if value is None:
            return ()
        skills = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
        unknown = [skill for skill in skills if skill not in ANTHROPIC_SKILLS]
        if unknown:
            raise SettingsError(name, f"unknown skill {unknown[0]!r}; use any of {', '.join(ANTHROPIC_SKILLS)}")
        return skills

    def code_execution(self, name: str) -> CodeExecutionTool:
        value = self.optional(name) or DEFAULT_CODE_EXECUTION
        key = value if value.startswith("code_execution_") else f"code_execution_{value}"
        try:
            return CODE_EXECUTION_TOOLS[key]
        except KeyError:
            known = ", ".join(sorted(CODE_EXECUTION_TOOLS))
            raise SettingsError(name, f"unknown tool version {value!r}; use one of {known}") from None
