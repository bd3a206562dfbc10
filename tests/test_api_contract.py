"""The engine's requests match the real Anthropic API: beta headers, tool versions, thinking and
effort, containers and refusals recognised by their structured fields."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest

from bot.engine import is_container_problem, is_too_long
from bot.settings import FILES_API_BETA, Settings, SettingsError
from bot.thinking import thinking_plan
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.scripts import Code, Pause, Text, scripted
from tests.harness import Harness

BASE = {"ANTHROPIC_API_KEY": "sk-ant-x", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}


def status_error(status: int, error: dict[str, Any]) -> anthropic.APIStatusError:
    """An APIStatusError as the SDK builds it from an error body."""
    request = httpx2.Request("POST", "https://api.anthropic.com/v1/messages")
    body = {"type": "error", "error": error}
    response = httpx2.Response(status, json=body, request=request)
    cls = {400: anthropic.BadRequestError, 404: anthropic.NotFoundError}[status]
    return cls(str(error.get("message")), response=response, body=body)


# ------------------------------------------------------------------ refusals, by structured fields


def test_a_refused_container_is_any_invalid_or_not_found_refusal() -> None:
    """The docs give a refused container no error code: every invalid/not-found refusal of a
    request that carried one earns it one more try in a fresh container; others don't."""
    expired = status_error(400, {"type": "invalid_request_error", "message": "container: it has expired"})
    unknown = status_error(404, {"type": "not_found_error", "message": "Not found"})
    assert is_container_problem(expired) and is_container_problem(unknown)
    overloaded = status_error(400, {"type": "overloaded_error", "message": "container overloaded"})
    assert not is_container_problem(overloaded)


def test_a_prompt_too_long_is_recognised_by_the_apis_own_message_not_the_sdks_rendering() -> None:
    too_long = status_error(
        400, {"type": "invalid_request_error", "message": "prompt is too long: 210311 tokens > 200000 maximum"}
    )
    assert is_too_long(too_long)
    elsewhere = status_error(400, {"type": "invalid_request_error", "message": "messages.0.content.0.text: too long"})
    assert not is_too_long(elsewhere)


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("version", "search", "fetch"),
    [
        ("20260521", "web_search_20260318", "web_fetch_20260318"),
        ("20260120", "web_search_20260318", "web_fetch_20260318"),
        ("20250825", "web_search_20250305", "web_fetch_20250910"),
        ("20250522", "web_search_20250305", "web_fetch_20250910"),
    ],
)
def test_web_tools_match_the_code_execution_version(version: str, search: str, fetch: str) -> None:
    settings = Settings.from_env({**BASE, "ANALYST_CODE_EXECUTION": version})
    assert settings.web_tool_types == (search, fetch)


def test_skills_need_a_bash_capable_code_execution_version() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**BASE, "ANALYST_CODE_EXECUTION": "20250522", "ANALYST_SKILLS": "xlsx"})
    assert caught.value.name == "ANALYST_SKILLS" and "\n" not in str(caught.value)
    assert Settings.from_env({**BASE, "ANALYST_CODE_EXECUTION": "20250825", "ANALYST_SKILLS": "xlsx"}).skills


def test_effort_and_max_tokens_are_checked() -> None:
    settings = Settings.from_env(BASE)
    assert settings.effort == "high" and settings.max_tokens == 32_000
    assert Settings.from_env({**BASE, "ANALYST_EFFORT": "Medium"}).effort == "medium"
    for env, name in (
        ({"ANALYST_EFFORT": "extreme"}, "ANALYST_EFFORT"),
        ({"ANALYST_MAX_TOKENS": "1000"}, "ANALYST_MAX_TOKENS"),  # no room left for thinking
        ({"ANALYST_MAX_TOKENS": "200000"}, "ANALYST_MAX_TOKENS"),
    ):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({**BASE, **env})
        assert caught.value.name == name


@pytest.mark.parametrize(
    ("model", "thinking", "effort"),
    [
        ("claude-sonnet-5-5", {"type": "adaptive"}, True),
        ("claude-opus-4-7", {"type": "adaptive"}, True),
        ("claude-sonnet-4-6", {"type": "adaptive"}, True),
        ("claude-mythos-preview", {"type": "adaptive"}, True),
        ("claude-sonnet-4-5", {"type": "enabled", "budget_tokens": 16_000}, False),
        ("claude-haiku-4-5-20251001", {"type": "enabled", "budget_tokens": 16_000}, False),
        ("claude-opus-4-5", {"type": "enabled", "budget_tokens": 16_000}, True),
        ("claude-sonnet-4-20250514", {"type": "enabled", "budget_tokens": 16_000}, False),
    ],
)
def test_thinking_is_configured_per_model(model: str, thinking: dict[str, Any], effort: bool) -> None:
    plan = thinking_plan(model, 32_000)
    assert plan.thinking == thinking and plan.effort == effort


# ------------------------------------------------------------------ what reaches the API


async def test_uploads_carry_the_files_api_beta_and_skills_need_none(
    env: dict[str, str], slack: Any, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    async with Harness({**env, "ANALYST_SKILLS": "xlsx"}, slack, claude) as harness:
        asked = await harness.mention("what drives churn?", files=[harness.file("streaming.csv", streaming_csv)])
        assert "45.3%" in harness.thread_text(asked)
    [call] = [r for r in claude.message_requests if r.status == 200]
    assert call.betas == [FILES_API_BETA]  # no skills beta: container.skills is GA
    assert call.body["container"]["skills"][0]["skill_id"] == "xlsx"
    files_calls = [r for r in claude.requests if r.path.startswith("/v1/files")]
    assert files_calls and all(FILES_API_BETA in r.betas for r in files_calls)


async def test_thinking_and_effort_reach_the_api_and_thinking_is_never_shown(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    claude.script = scripted(Code("print(6 * 7)"), Pause(), Text("The answer is **42**."))
    asked = await harness.mention("compute", files=[harness.file("streaming.csv", streaming_csv)])
    first, second = claude.message_requests
    assert first.body["thinking"] == {"type": "adaptive"} and first.body["output_config"] == {"effort": "high"}
    assert first.body["max_tokens"] == 32_000
    # The paused turn's thinking block went back exactly as it came (the fake checks the signature).
    thinking = claude.responses[0]["content"][0]
    assert thinking["type"] == "thinking"
    assert second.status == 200 and second.body["messages"][-1]["content"][0] == thinking
    text = harness.thread_text(asked)
    assert "42" in text and thinking["signature"] not in text


async def test_summarised_thinking_is_not_posted(
    env: dict[str, str], slack: Any, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    claude.script = scripted(Code("print(6 * 7)"), Text("The answer is **42**."))
    async with Harness({**env, "ANALYST_MODEL": "claude-opus-4-7"}, slack, claude) as harness:
        asked = await harness.mention("compute", files=[harness.file("streaming.csv", streaming_csv)])
        thinking = claude.responses[0]["content"][0]
        assert thinking["type"] == "thinking" and thinking["thinking"]
        assert thinking["thinking"] not in harness.thread_text(asked)
        assert "42" in harness.thread_text(asked)


async def test_older_code_execution_gets_the_web_tools_it_works_with(
    env: dict[str, str], slack: Any, claude: FakeAnthropic
) -> None:
    claude.script = scripted(Text("ok"))
    extra = {
        "ANALYST_CODE_EXECUTION": "20250825",
        "ANALYST_WEB_SEARCH_MAX_USES": "2",
        "ANALYST_WEB_FETCH_MAX_USES": "1",
    }
    async with Harness({**env, **extra}, slack, claude) as harness:
        await harness.mention("anything new?")
    [call] = claude.message_requests
    assert call.status == 200
    assert [t["type"] for t in call.body["tools"]] == [
        "code_execution_20250825",
        "web_search_20250305",
        "web_fetch_20250910",
    ]
