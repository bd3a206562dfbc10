"""Conformance checks of the fake Slack: slack_sdk signatures and the one strict Block Kit check.

Calls go through the real ``AsyncWebClient`` against the fake. A call or payload Slack
would refuse is answered with Slack's error AND recorded; these tests ``take()`` what
they provoke, and the autouse ``slack_conformance`` fixture fails any test that leaves a
violation behind.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import FakeSlack
from tests.fakes.slack_blocks import BlocksRejected, validate_blocks
from tests.fakes.slack_contract import ConformanceLog, Violation, argument_problems

JSON = dict[str, Any]
pytest_plugins = ["pytester"]


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def refused(call: Any) -> JSON:
    with pytest.raises(SlackApiError) as raised:
        await call
    return dict(raised.value.response.data)


# =========================================================================== slack_sdk signatures


async def test_an_argument_the_sdk_method_does_not_name_is_refused_and_recorded(
    slack: FakeSlack, client: AsyncWebClient, slack_conformance: ConformanceLog
) -> None:
    answer = await refused(client.chat_postMessage(channel="C0DATA", text="hi", colour="red"))

    assert answer["error"] == "invalid_arguments"
    assert "unexpected argument: colour" in answer["response_metadata"]["messages"][0]
    assert slack.channel_messages("C0DATA") == []
    [violation] = slack_conformance.take()
    assert (violation.kind, violation.method) == ("arguments", "chat.postMessage")


async def test_a_missing_required_argument_is_refused_and_recorded(
    client: AsyncWebClient, slack_conformance: ConformanceLog
) -> None:
    answer = await refused(client.api_call("reactions.add", json={"channel": "C0DATA", "name": "eyes"}))

    assert answer["error"] == "invalid_arguments"
    assert answer["response_metadata"]["messages"] == [
        "[ERROR] missing required field: timestamp (required by reactions_add)"
    ]
    assert [v.method for v in slack_conformance.take()] == ["reactions.add"]


async def test_a_scalar_of_the_wrong_type_is_refused(client: AsyncWebClient, slack_conformance: ConformanceLog) -> None:
    posted = await client.chat_postMessage(channel="C0DATA", text="root")
    answer = await refused(
        client.chat_postMessage(channel="C0DATA", text="reply", thread_ts=float(posted["ts"]))  # type: ignore[arg-type]
    )

    assert answer["error"] == "invalid_arguments"
    assert "thread_ts must be str, got float" in answer["response_metadata"]["messages"][0]
    assert len(slack_conformance.take()) == 1


async def test_a_method_slack_sdk_does_not_have_is_unknown(
    client: AsyncWebClient, slack_conformance: ConformanceLog
) -> None:
    answer = await refused(client.api_call("chat.postMessages", json={"channel": "C0DATA", "text": "x"}))

    assert answer["error"] == "unknown_method"
    [violation] = slack_conformance.take()
    assert "no method chat_postMessages()" in violation.problems[0]


async def test_what_slack_sdk_itself_adds_or_moves_is_conformant(
    slack: FakeSlack, client: AsyncWebClient, slack_conformance: ConformanceLog
) -> None:
    # team_id from a client built with it (as Bolt builds its per-request clients)
    scoped = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, team_id=slack.team_id)
    posted = await scoped.chat_postMessage(channel="C0DATA", text="hello", unfurl_links=False)
    # app_token sent as the token of apps.connections.open
    await client.apps_connections_open(app_token=slack.app_token)
    # blocks that files_upload_v2 passes to files.completeUploadExternal through **kwargs
    await client.files_upload_v2(
        channel="C0DATA",
        thread_ts=posted["ts"],
        content="a,b\n1,2\n",
        filename="t.csv",
        blocks=json.dumps([{"type": "markdown", "text": "**the table**"}]),
    )
    # lists joined by commas, and booleans as "1"/"0" and numbers as strings, in form encodings
    slack.add_channel("C0TEAM", "team")
    await client.files_upload_v2(channels=["C0DATA", "C0TEAM"], content="a\n1\n", filename="u.csv")
    await client.conversations_replies(channel="C0DATA", ts=posted["ts"], limit=10, include_all_metadata=True)

    assert slack_conformance.take() == []
    assert all(call.response and call.response["ok"] for call in slack.calls)


def test_every_method_the_fake_serves_exists_in_slack_sdk(slack: FakeSlack) -> None:
    unknown = [m for m in slack.api.methods if argument_problems(m, {}) and "no method" in argument_problems(m, {})[0]]
    assert unknown == []


# =========================================================================== the autouse fixture


def test_a_test_that_leaves_a_violation_fails_at_teardown(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The inner run is a fresh process in a temporary folder: it finds ``tests`` through PYTHONPATH.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    pytester.makeconftest("from tests.conftest import slack_conformance  # noqa: F401\n")
    pytester.makepyfile(
        textwrap.dedent(
            """
            from tests.fakes.slack_contract import CONFORMANCE

            def test_leaves_one():
                CONFORMANCE.record("arguments", "chat.postMessage", ["[ERROR] unexpected argument: colour"])

            def test_takes_it(slack_conformance):
                CONFORMANCE.record("arguments", "chat.postMessage", ["[ERROR] unexpected argument: colour"])
                assert len(slack_conformance.take()) == 1
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaves_one*", "*unexpected argument: colour*"])


# =========================================================================== Block Kit


def feedback_buttons(**overrides: Any) -> JSON:
    """The docs' example (block-kit/blocks/context-actions-block), with ``overrides``."""
    element: JSON = {
        "type": "feedback_buttons",
        "action_id": "feedback_buttons_1",
        "positive_button": {"text": {"type": "plain_text", "text": "👍"}, "value": "positive_feedback"},
        "negative_button": {"text": {"type": "plain_text", "text": "👎"}, "value": "negative_feedback"},
    }
    return {**element, **overrides}


ICON_BUTTON: JSON = {
    "type": "icon_button",
    "icon": "trash",
    "text": {"type": "plain_text", "text": "Delete"},
    "action_id": "delete_button_1",
    "value": "delete_item",
}


def plain(text: str) -> JSON:
    return {"type": "plain_text", "text": text}


def mrkdwn(text: str) -> JSON:
    return {"type": "mrkdwn", "text": text}


GOOD_BLOCKS: list[JSON] = [
    {"type": "header", "text": plain("Churn analysis")},
    {"type": "markdown", "text": "**Overall churn** is 29.1%"},
    {
        "type": "section",
        "text": mrkdwn("*Drivers*"),
        "fields": [mrkdwn("tier"), mrkdwn("watch_hours")],
        "accessory": {"type": "button", "text": plain("Details"), "action_id": "details", "value": "d"},
    },
    {"type": "divider"},
    {
        "type": "context",
        "elements": [mrkdwn("from streaming.csv"), {"type": "image", "image_url": "https://x/i.png", "alt_text": "i"}],
    },
    {
        "type": "image",
        "image_url": "https://example.com/chart.png",
        "alt_text": "chart",
        "title": plain("Churn by tier"),
    },
    {
        "type": "rich_text",
        "elements": [
            {
                "type": "rich_text_section",
                "elements": [{"type": "text", "text": "Top drivers", "style": {"bold": True}}],
            },
            {
                "type": "rich_text_list",
                "style": "bullet",
                "elements": [{"type": "rich_text_section", "elements": [{"type": "user", "user_id": "U0ALICE"}]}],
            },
            {"type": "rich_text_preformatted", "elements": [{"type": "text", "text": "df.groupby('tier')"}]},
            {"type": "rich_text_quote", "elements": [{"type": "link", "url": "https://example.com"}]},
        ],
    },
    {
        "type": "table",
        "rows": [
            [{"type": "raw_text", "text": "tier"}, {"type": "raw_text", "text": "churn"}],
            [{"type": "raw_text", "text": "Free"}, {"type": "raw_text", "text": "45.3%"}],
        ],
        "column_settings": [{"align": "left"}, None],
    },
    {
        "type": "actions",
        "elements": [
            {"type": "button", "text": plain("Rerun"), "action_id": "rerun", "style": "primary"},
            {
                "type": "static_select",
                "action_id": "pick",
                "placeholder": plain("Column"),
                "options": [{"text": plain("tier"), "value": "tier"}],
            },
        ],
    },
    {"type": "context_actions", "elements": [feedback_buttons(), ICON_BUTTON]},
]


def test_documented_blocks_pass() -> None:
    validate_blocks(GOOD_BLOCKS)
    # the docs' own two context_actions examples, verbatim
    validate_blocks([{"type": "context_actions", "elements": [feedback_buttons()]}])
    validate_blocks([{"type": "context_actions", "elements": [ICON_BUTTON]}])


def without(obj: JSON, key: str) -> JSON:
    return {k: v for k, v in obj.items() if k != key}


def many(item: Any, count: int) -> list[Any]:
    return [item] * count


BAD_BLOCKS: list[tuple[str, list[Any], str]] = [
    # (what is wrong, the blocks, a fragment of Slack's message)
    ("unknown block type", [{"type": "sparkles"}], "unknown block type 'sparkles' [json-pointer:/blocks/0/type]"),
    ("unknown field in a block", [{"type": "divider", "colour": "red"}], "unknown field 'colour'"),
    (
        "unknown field in a text object",
        [{"type": "header", "text": {**plain("x"), "bold": True}}],
        "unknown field 'bold'",
    ),
    ("markdown without text", [{"type": "markdown"}], "missing required field: text"),
    ("section with neither text nor fields", [{"type": "section"}], "must provide one of fields or text"),
    ("image without alt_text", [{"type": "image", "image_url": "https://x/i.png"}], "missing required field: alt_text"),
    (
        "image with neither url nor file",
        [{"type": "image", "alt_text": "x"}],
        "must provide one of image_url or slack_file",
    ),
    ("header in mrkdwn", [{"type": "header", "text": mrkdwn("x")}], "text type 'mrkdwn' is not allowed here"),
    ("51 blocks", many({"type": "divider"}, 51), "no more than 50 items allowed [json-pointer:/blocks]"),
    ("section text of 3001", [{"type": "section", "text": mrkdwn("x" * 3001)}], "must be less than 3001 characters"),
    (
        "section field of 2001",
        [{"type": "section", "fields": [mrkdwn("x" * 2001)]}],
        "must be less than 2001 characters",
    ),
    ("11 section fields", [{"type": "section", "fields": many(mrkdwn("x"), 11)}], "no more than 10 items allowed"),
    ("header of 151", [{"type": "header", "text": plain("x" * 151)}], "must be less than 151 characters"),
    ("empty text", [{"type": "section", "text": mrkdwn("")}], "must be more than 0 characters"),
    ("block_id of 256", [{"type": "divider", "block_id": "b" * 256}], "must be less than 256 characters"),
    (
        "duplicate block_id",
        [{"type": "divider", "block_id": "a"}, {"type": "divider", "block_id": "a"}],
        "duplicate block_id 'a'",
    ),
    ("11 context elements", [{"type": "context", "elements": many(mrkdwn("x"), 11)}], "no more than 10 items allowed"),
    (
        "a button in a context block",
        [{"type": "context", "elements": [{"type": "button", "text": plain("x")}]}],
        "unknown context element type 'button'",
    ),
    (
        "26 actions",
        [
            {
                "type": "actions",
                "elements": [{"type": "button", "text": plain("x"), "action_id": f"a{i}"} for i in range(26)],
            }
        ],
        "no more than 25 items allowed",
    ),
    ("unknown element", [{"type": "actions", "elements": [{"type": "slider"}]}], "unknown element type 'slider'"),
    (
        "button text of 76",
        [{"type": "actions", "elements": [{"type": "button", "text": plain("x" * 76)}]}],
        "must be less than 76 characters",
    ),
    (
        "duplicate action_id",
        [{"type": "actions", "elements": [{"type": "button", "text": plain("x"), "action_id": "a"}] * 2}],
        "duplicate action_id 'a'",
    ),
    ("empty context_actions", [{"type": "context_actions", "elements": []}], "must provide at least 1 items"),
    (
        "6 context_actions elements",
        [{"type": "context_actions", "elements": [{**ICON_BUTTON, "action_id": f"d{i}"} for i in range(6)]}],
        "no more than 5 items allowed",
    ),
    (
        "a button in context_actions",
        [{"type": "context_actions", "elements": [{"type": "button", "text": plain("x")}]}],
        "element type 'button' is not allowed here",
    ),
    (
        "feedback_buttons without negative_button",
        [{"type": "context_actions", "elements": [without(feedback_buttons(), "negative_button")]}],
        "missing required field: negative_button",
    ),
    (
        "feedback button without value",
        [{"type": "context_actions", "elements": [feedback_buttons(positive_button={"text": plain("👍")})]}],
        "missing required field: value",
    ),
    (
        "feedback button text of 76",
        [
            {
                "type": "context_actions",
                "elements": [feedback_buttons(positive_button={"text": plain("x" * 76), "value": "p"})],
            }
        ],
        "must be less than 76 characters",
    ),
    (
        "icon_button with another icon",
        [{"type": "context_actions", "elements": [{**ICON_BUTTON, "icon": "bin"}]}],
        "must be one of trash",
    ),
    (
        "icon_button without text",
        [{"type": "context_actions", "elements": [without(ICON_BUTTON, "text")]}],
        "missing required field: text",
    ),
    (
        "markdown over 12,000 in total",
        [{"type": "markdown", "text": "x" * 7000}, {"type": "markdown", "text": "y" * 5001}],
        "markdown blocks must total no more than 12000",
    ),
    (
        "rich text leaf of unknown type",
        [{"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [{"type": "bold"}]}]}],
        "unknown rich text element type 'bold'",
    ),
    (
        "rich text list without style",
        [{"type": "rich_text", "elements": [{"type": "rich_text_list", "elements": []}]}],
        "missing required field: style",
    ),
    (
        "101 table rows",
        [{"type": "table", "rows": many([{"type": "raw_text", "text": "x"}], 101)}],
        "no more than 100 items allowed",
    ),
    (
        "21 table cells",
        [{"type": "table", "rows": [many({"type": "raw_text", "text": "x"}, 21)]}],
        "no more than 20 items allowed",
    ),
    (
        "table cell of unknown type",
        [{"type": "table", "rows": [[{"type": "number", "value": 1}]]}],
        "unknown table cell type 'number'",
    ),
]


@pytest.mark.parametrize(("blocks", "message"), [case[1:] for case in BAD_BLOCKS], ids=[case[0] for case in BAD_BLOCKS])
def test_the_strict_check_refuses(blocks: list[Any], message: str) -> None:
    with pytest.raises(BlocksRejected) as rejected:
        validate_blocks(blocks)
    assert any(message in line for line in rejected.value.messages), rejected.value.messages


# --------------------------------------------------------------------------- every surface uses it

BAD = [{"type": "context_actions", "elements": [{**ICON_BUTTON, "icon": "bin"}]}]


@pytest.fixture
async def stream_ts(client: AsyncWebClient) -> AsyncIterator[tuple[str, str]]:
    root = await client.chat_postMessage(channel="C0DATA", text="question")
    started = await client.chat_startStream(
        channel="C0DATA", thread_ts=root["ts"], recipient_team_id="T0TEAM", recipient_user_id="U0ALICE"
    )
    yield root["ts"], str(started["ts"])


async def test_every_surface_refuses_bad_blocks_and_records_it(
    slack: FakeSlack, client: AsyncWebClient, slack_conformance: ConformanceLog, stream_ts: tuple[str, str]
) -> None:
    root, streaming = stream_ts
    posted = await client.chat_postMessage(channel="C0DATA", text="ok", blocks=GOOD_BLOCKS)
    calls = {
        "chat.postMessage": client.chat_postMessage(channel="C0DATA", text="x", blocks=BAD),
        "chat.update": client.chat_update(channel="C0DATA", ts=posted["ts"], text="x", blocks=BAD),
        "chat.postEphemeral": client.chat_postEphemeral(channel="C0DATA", user="U0ALICE", text="x", blocks=BAD),
        "stream chunk": client.chat_appendStream(
            channel="C0DATA", ts=streaming, chunks=[{"type": "blocks", "blocks": BAD}]
        ),
        "chat.stopStream": client.chat_stopStream(channel="C0DATA", ts=streaming, blocks=BAD),
    }
    for method, call in calls.items():
        answer = await refused(call)
        assert answer["error"] == "invalid_blocks", (method, answer)
        assert "must be one of trash" in answer["response_metadata"]["messages"][0]

    recorded = slack_conformance.take()
    assert [(v.kind, v.method) for v in recorded] == [("blocks", method) for method in calls]
    assert all(isinstance(v, Violation) for v in recorded)
    assert slack.message("C0DATA", posted["ts"]).blocks == GOOD_BLOCKS  # the good message was not changed
    assert root
