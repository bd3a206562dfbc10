"""The assistant pane as a person sees it: a thread named after its first question,
suggested prompts about the shared table's columns, a status naming the current step, and
the web pages a step read listed on its task."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from bot.columns import clean_name, decode_head, header_columns
from bot.engine import web_sources
from bot.prompts import SUGGESTED_PROMPTS, column_prompts
from handlers.slack.progress import MAX_TASK_SOURCES, source_elements
from handlers.slack.publisher import PANE_TITLE_LIMIT, pane_title
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.scripts import Code, Text, WebFetch, WebSearch, scripted
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_models import AssistantThread
from tests.harness import Harness

STREAMING_COLUMNS = (
    "user_id",
    "tier",
    "watch_hours",
    "account_age_months",
    "country",
    "device",
    "monthly_price",
    "support_tickets",
    "signup_date",
    "churned",
)


async def open_pane(harness: Harness, slack: FakeSlack, user: str = "U0ALICE") -> tuple[str, str]:
    """A person opens the assistant pane: (dm channel, thread ts), the generic prompts shown."""
    thread_ts, channel, envelope = slack.assistant_thread_started_event(user)
    await harness.deliver(envelope)
    await slack.wait_for(lambda: bool((t := slack.assistant_thread(channel, thread_ts)) and t.prompts))
    return channel, thread_ts


async def ask_in_pane(
    harness: Harness,
    slack: FakeSlack,
    channel: str,
    thread_ts: str,
    text: str,
    files: list[dict[str, Any]] | None = None,
) -> AssistantThread:
    _, envelope = slack.assistant_user_message_event(channel, "U0ALICE", text, thread_ts=thread_ts, files=files)
    await harness.deliver(envelope)
    await harness.settle()
    thread = slack.assistant_thread(channel, thread_ts)
    assert thread is not None
    return thread


# -- the thread's title -------------------------------------------------------------------


async def test_the_first_question_names_the_thread_and_a_follow_up_keeps_the_name(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    channel, thread_ts = await open_pane(harness, slack)
    thread = await ask_in_pane(
        harness, slack, channel, thread_ts, "What drives churn here?", [harness.file("streaming.csv", streaming_csv)]
    )
    assert thread.title == "What drives churn here?"
    root = slack.message(channel, thread_ts)
    assert root.assistant_app_thread is not None and root.assistant_app_thread["title"] == "What drives churn here?"

    await ask_in_pane(harness, slack, channel, thread_ts, "now split that by country")
    assert thread.title == "What drives churn here?"
    assert len(slack.calls_to("assistant.threads.setTitle")) == 1


async def test_a_file_sent_without_a_question_names_the_thread_after_the_file(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    channel, thread_ts = await open_pane(harness, slack)
    thread = await ask_in_pane(harness, slack, channel, thread_ts, "", [harness.file("streaming.csv", streaming_csv)])
    assert thread.title == "streaming.csv"


def test_pane_titles_are_plain_inert_and_short() -> None:
    assert pane_title("  What   drives\nchurn?  ", []) == "What drives churn?"
    assert pane_title("", ["q3 sales.csv"]) == "q3 sales.csv"
    assert pane_title("", ["a.csv", "b.csv"]) == "2 files"
    assert pane_title("", []) is None
    pinged = pane_title("tell <!channel> about <https://example.com|this>", [])
    assert pinged is not None and "<!channel>" not in pinged and "this (https://example.com)" in pinged
    long = pane_title("why " * 100, [])
    assert long is not None and len(long) == PANE_TITLE_LIMIT and long.endswith("…")


# -- suggested prompts about the table --------------------------------------------------------


async def test_prompts_turn_to_the_shared_tables_columns_once_a_file_is_known(
    harness: Harness, slack: FakeSlack, streaming_csv: bytes
) -> None:
    channel, thread_ts = await open_pane(harness, slack)
    thread = slack.assistant_thread(channel, thread_ts)
    assert thread is not None
    assert [p["title"] for p in thread.prompts] == [p["title"] for p in SUGGESTED_PROMPTS]  # generic before

    await ask_in_pane(
        harness, slack, channel, thread_ts, "summarise it", [harness.file("streaming.csv", streaming_csv)]
    )
    titles = [p["title"] for p in thread.prompts]
    assert titles[:2] == ["Churn by tier", "What drives `churned`?"]
    assert len(titles) <= 4 and thread.prompts_title == "Ask about this table"
    assert "`churned`" in thread.prompts[1]["message"] and "streaming.csv" in thread.prompts[1]["message"]


async def test_a_question_without_a_table_keeps_the_generic_prompts(harness: Harness, slack: FakeSlack) -> None:
    channel, thread_ts = await open_pane(harness, slack)
    thread = await ask_in_pane(harness, slack, channel, thread_ts, "what is 6 times 7?")
    assert [p["title"] for p in thread.prompts] == [p["title"] for p in SUGGESTED_PROMPTS]
    assert len(slack.calls_to("assistant.threads.setSuggestedPrompts")) == 1


def test_column_prompts_for_the_churn_table() -> None:
    prompts = column_prompts(STREAMING_COLUMNS, file_name="streaming.csv")
    assert [p["title"] for p in prompts] == [
        "Churn by tier",
        "What drives `churned`?",
        "Trend over signup date",
        "Summarise this table",
    ]
    assert prompts[0]["message"] == (
        "Compare `churned` across each `tier` in streaming.csv: the rates, the counts and a chart."
    )


def test_column_prompts_without_a_target_or_a_segment() -> None:
    segmented = [p["title"] for p in column_prompts(("order_id", "Region", "amount"))]
    assert segmented == ["Compare by region", "Summarise this table", "What stands out?"]
    plain = column_prompts(("a", "b", "c"))
    assert [p["title"] for p in plain] == ["Summarise this table", "What stands out?"]
    assert "3 columns" in plain[0]["message"]


def test_column_prompts_read_names_in_any_style_and_keep_to_the_limits() -> None:
    titles = [p["title"] for p in column_prompts(("customerSegment", "isConverted", "created_at"))]
    assert titles[:2] == ["Conversion by customer segment", "What drives `isConverted`?"]
    assert column_prompts(("label", "group"))[0]["title"] == "Label by group"
    long = column_prompts(("x" * 60 + "_churn", "plan"), limit=2, title_chars=40)
    assert len(long) == 2 and all(len(p["title"]) <= 40 for p in long)
    assert long[1]["title"].endswith("…")


# -- column names from a file's first bytes ------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "kind", "columns"),
    [
        (b"user_id,tier,churned\nu1,Free,1\n", "CSV", ("user_id", "tier", "churned")),
        (b'\xef\xbb\xbfid;"Name; full";Betrag \x80\n1;a;2\n', "CSV", ("id", "Name; full", "Betrag")),
        (b'"multi\nline",b\n1,2\n', "CSV", ("multi line", "b")),
        (b"a|b|c\n1|2|3\n", "CSV", ("a", "b", "c")),
        (b"a,b\tc\td\n", "TSV", ("a,b", "c", "d")),
        (b"\xff\xfe" + "x,y\n1,2\n".encode("utf-16-le"), "CSV", ("x", "y")),
        (b"caf\xe9,na\xefve\n1,2\n", "CSV", ("café", "naïve")),
        (b"a,,a,`b`\n", "CSV", ("a", "'b'")),
        (b"1,2,3\n4,5,6\n", "CSV", ()),  # no header: the first row is data
        (b"just one column\nvalue\n", "CSV", ()),
        (b"a,b\n", "Excel", ()),
        (b"", "CSV", ()),
    ],
)
def test_header_columns(head: bytes, kind: str, columns: tuple[str, ...]) -> None:
    assert header_columns(head, kind) == columns


def test_a_header_cut_off_by_the_sample_gives_no_columns() -> None:
    head = (",".join(f"column_{i}" for i in range(2000))).encode()[:8192]
    assert header_columns(head, "CSV") == ()
    assert header_columns(b'"an open quote,b', "CSV") == ()


def test_column_names_are_cleaned() -> None:
    assert clean_name("  total\u200b  revenue\x07 ") == "total revenue"
    assert len(clean_name("x" * 100)) == 60
    assert decode_head(b"ok \xe2\x82") == "ok "  # a character cut at the end of the sample


# -- the status names the current step ------------------------------------------------------------


async def test_the_status_names_each_step_once(harness: Harness, slack: FakeSlack, streaming_csv: bytes) -> None:
    channel, thread_ts = await open_pane(harness, slack)
    await ask_in_pane(
        harness, slack, channel, thread_ts, "what drives churn?", [harness.file("streaming.csv", streaming_csv)]
    )
    calls = [c.params for c in slack.calls_to("assistant.threads.setStatus") if c.ok]
    assert {c["status"] for c in calls} == {"is analysing your data…"}
    loading = [c["loading_messages"] for c in calls]
    assert loading[0] == ["Reading your data…"]
    [stream] = [m.stream for m in slack.thread(channel, thread_ts) if m.stream is not None]
    steps = [t.title for task_id, t in stream.tasks.items() if task_id.startswith("step-")]
    assert [messages for [messages] in loading[1:]] == steps  # each step named once, in order
    assert "Working in the sandbox" not in steps


# -- web pages as task sources -------------------------------------------------------------------


async def test_the_pages_a_web_search_and_fetch_used_are_listed_on_their_tasks(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = scripted(
        WebSearch(
            "streaming churn benchmarks",
            results=[
                ("Churn report <!channel>", "https://example.com/churn", "8%"),
                ("2026", "https://example.com/26"),
            ],
        ),
        WebFetch("https://example.com/churn", text="Average monthly churn: 8%.", title="Churn report 2026"),
        Code("print('compared')"),
        Text("Your churn is above the industry's 8%."),
    )
    async with Harness(
        {**env, "ANALYST_WEB_SEARCH_MAX_USES": "2", "ANALYST_WEB_FETCH_MAX_USES": "1"}, slack, claude
    ) as harness:
        asked = await harness.mention("how does our churn compare with the industry?")
        [stream] = [m.stream for m in harness.replies(asked) if m.stream is not None]
        search, fetch, code = (stream.tasks[f"step-{n}"] for n in (1, 2, 3))
        assert [(s["url"], s["text"]) for s in search.sources] == [
            ("https://example.com/churn", "Churn report <\u200b!channel>"),
            ("https://example.com/26", "2026"),
        ]
        assert fetch.sources == [{"type": "url", "url": "https://example.com/churn", "text": "Churn report 2026"}]
        assert code.sources == []
        assert "↗ Churn report 2026 <https://example.com/churn>" in slack.visible_text(
            next(m for m in harness.replies(asked) if m.stream is not None)
        )


def test_source_elements_keep_to_web_pages_and_the_limit() -> None:
    pages = tuple((f"https://example.com/{i}", f"Page {i}") for i in range(15))
    elements = source_elements((("ftp://x", "no"), ("https://a.org", ""), *pages, pages[0]))
    assert elements[0] == {"type": "url", "url": "https://a.org", "text": "https://a.org"}
    assert len(elements) == MAX_TASK_SOURCES and len({e["url"] for e in elements}) == MAX_TASK_SOURCES


def test_web_sources_of_result_blocks() -> None:
    from anthropic.types import WebFetchToolResultBlock, WebSearchToolResultBlock

    search = WebSearchToolResultBlock.model_validate(
        {
            "type": "web_search_tool_result",
            "tool_use_id": "srvtoolu_1",
            "content": [
                {"type": "web_search_result", "url": "https://a.org", "title": "A", "encrypted_content": "x"},
                {"type": "web_search_result", "url": "https://b.org", "title": "", "encrypted_content": "x"},
            ],
        }
    )
    assert web_sources(search) == (("https://a.org", "A"), ("https://b.org", "https://b.org"))
    failed = WebSearchToolResultBlock.model_validate(
        {
            "type": "web_search_tool_result",
            "tool_use_id": "srvtoolu_1",
            "content": {"type": "web_search_tool_result_error", "error_code": "unavailable"},
        }
    )
    assert web_sources(failed) == ()
    fetched = WebFetchToolResultBlock.model_validate(
        {
            "type": "web_fetch_tool_result",
            "tool_use_id": "srvtoolu_2",
            "content": {
                "type": "web_fetch_result",
                "url": "https://c.org/p",
                "content": {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}},
            },
        }
    )
    assert web_sources(fetched) == (("https://c.org/p", "https://c.org/p"),)


# -- the fake holds the bot to Slack's rules -----------------------------------------------------


async def test_the_fake_refuses_malformed_sources_and_loading_messages(harness: Harness, slack: FakeSlack) -> None:
    client = harness.running.surface.client
    channel, thread_ts = await open_pane(harness, slack)
    stream = await client.chat_startStream(channel=channel, thread_ts=thread_ts)
    for sources in ([{"type": "url", "url": "https://a.org"}], [{"type": "link", "url": "u", "text": "t"}], "x"):
        task = {"type": "task_update", "id": "t", "title": "T", "status": "complete", "sources": sources}
        with pytest.raises(SlackApiError) as refused:
            await client.api_call("chat.appendStream", json={"channel": channel, "ts": stream["ts"], "chunks": [task]})
        assert refused.value.response["error"] == "invalid_chunks"
    for loading in ([""], [1], ["x"] * 11):
        with pytest.raises(SlackApiError) as refused:
            await client.api_call(
                "assistant.threads.setStatus",
                json={"channel_id": channel, "thread_ts": thread_ts, "status": "busy", "loading_messages": loading},
            )
        assert refused.value.response["error"] == "invalid_arguments"
