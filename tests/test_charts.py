"""An answer's files in the thread: all of them in one message, charts first, each chart
titled and described from the step that drew it; a file that fails costs only itself."""

from __future__ import annotations

from typing import Any

from handlers.slack.attachments import MAX_FILES_PER_MESSAGE, chart_labels, upload_batches
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.scripts import Code, Text, output_files_code, scripted
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_models import Message
from tests.harness import Asked, Harness

CODE_FILE = "analysis_code.py"
NOTEBOOK = "analysis.ipynb"


def file_messages(harness: Harness, asked: Asked) -> list[Message]:
    """The bot's messages in the thread that carry generated files (not the code listing)."""
    return [
        m for m in harness.replies(asked) if m.files and all(f["name"] not in (CODE_FILE, NOTEBOOK) for f in m.files)
    ]


async def test_charts_and_tables_arrive_in_one_message_with_titles_and_alt_text(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = scripted(
        Code(output_files_code("table.csv", "trend.png")),
        Code(output_files_code("book.xlsx", "by_tier.png")),
        Text("Two charts and two tables."),
    )
    asked = await harness.mention("chart and tabulate it")
    [message] = file_messages(harness, asked)
    names = [f["name"] for f in message.files]
    assert names[:2] == ["trend.png", "by_tier.png"] and sorted(names[2:]) == ["book.xlsx", "table.csv"]
    # Each script is written to a file, then run: the run is the step that drew the chart.
    steps = [t.title for t in _step_tasks(harness, asked)]
    assert steps == ["Writing analysis_1.py", "Running analysis_1.py", "Writing analysis_2.py", "Running analysis_2.py"]
    by_name = {f["name"]: slack.file(f["id"]) for f in message.files}
    assert by_name["trend.png"].title == "Trend · Running analysis_1.py"
    assert by_name["trend.png"].alt_txt == "Chart: Trend. Drawn in step 2 of the analysis (Running analysis_1.py)."
    assert by_name["by_tier.png"].title == "By tier · Running analysis_2.py"
    assert by_name["by_tier.png"].alt_txt == "Chart: By tier. Drawn in step 4 of the analysis (Running analysis_2.py)."
    assert by_name["table.csv"].title == "Table" and by_name["table.csv"].alt_txt is None
    [complete] = [c for c in slack.calls_to("files.completeUploadExternal") if len(c.params["files"]) > 1]
    assert len(complete.params["files"]) == 4
    [run] = await harness.running.analyst.store.all_runs()
    assert run["files_out"] == 4


def _step_tasks(harness: Harness, asked: Asked) -> list[Any]:
    [stream] = [m.stream for m in harness.replies(asked) if m.stream is not None]
    return [task for task_id, task in stream.tasks.items() if task_id.startswith("step-")]


async def test_more_files_than_a_message_holds_go_in_as_few_messages_as_possible(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    names = [f"chart_{i:02}.png" for i in range(12)]
    claude.script = scripted(Code(output_files_code(*names)), Text("Twelve charts."))
    async with Harness({**env, "ANALYST_MAX_OUTPUT_FILES": "12"}, slack, claude) as harness:
        asked = await harness.mention("chart everything")
        messages = file_messages(harness, asked)
        assert [len(m.files) for m in messages] == [MAX_FILES_PER_MESSAGE, 2]
        assert sorted(f["name"] for m in messages for f in m.files) == names
        [run] = await harness.running.analyst.store.all_runs()
        assert run["files_out"] == 12


async def test_a_file_that_cant_be_fetched_is_named_and_the_rest_arrive_together(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = scripted(Code(output_files_code("a.png", "b.png", "c.csv")), Text("Three files."))
    claude.break_download_next(after_bytes=10)  # the first chart
    asked = await harness.mention("make three files")
    [message] = file_messages(harness, asked)
    assert [f["name"] for f in message.files] == ["b.png", "c.csv"]
    assert "I couldn't attach *a.png* (fetching it from Claude's sandbox failed)" in harness.thread_text(asked)
    [run] = await harness.running.analyst.store.all_runs()
    assert run["status"] == "succeeded" and run["files_out"] == 2


async def test_a_refused_message_of_files_is_posted_file_by_file(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = scripted(Code(output_files_code("a.png", "b.png")), Text("Two charts."))
    slack.fail_next("files.completeUploadExternal", error="internal_error")
    asked = await harness.mention("make two charts")
    messages = file_messages(harness, asked)
    assert [[f["name"] for f in m.files] for m in messages] == [["a.png"], ["b.png"]]
    assert "couldn't attach" not in harness.thread_text(asked)
    [run] = await harness.running.analyst.store.all_runs()
    assert run["files_out"] == 2


async def test_a_file_slack_refuses_costs_only_that_file(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = scripted(Code(output_files_code("a.png", "b.png")), Text("Two charts."))
    # The message of both fails on a.png; alone, a.png fails again and b.png goes.
    slack.fail_next("files.getUploadURLExternal", error="invalid_arguments", times=2)
    asked = await harness.mention("make two charts")
    assert [[f["name"] for f in m.files] for m in file_messages(harness, asked)] == [["b.png"]]
    assert "I couldn't attach *a.png* (Slack refused the upload (`invalid_arguments`))" in harness.thread_text(asked)
    [run] = await harness.running.analyst.store.all_runs()
    assert run["files_out"] == 1


def test_chart_labels() -> None:
    assert chart_labels("churn_by_tier.png", 3, "Running analysis_2.py") == (
        "Churn by tier · Running analysis_2.py",
        "Chart: Churn by tier. Drawn in step 3 of the analysis (Running analysis_2.py).",
    )
    assert chart_labels("x.png", None, None) == ("X", "Chart: X.")
    assert chart_labels("x.png", 1, "Working in the sandbox") == ("X", "Chart: X.")
    title, alt = chart_labels("x.png", 2, "Running <!here> now")
    assert "<!here>" not in title and "<!here>" not in alt


def test_upload_batches_respect_the_count_and_size_limits() -> None:
    def upload(name: str) -> dict[str, Any]:
        return {"filename": name}

    small = [(upload(f"{i}.png"), 1000) for i in range(23)]
    assert [len(b) for b in upload_batches(small)] == [10, 10, 3]
    big = 60 * 1024 * 1024
    batches = upload_batches([(upload("a.csv"), big), (upload("b.csv"), big), (upload("c.png"), 10)])
    assert [[u["filename"] for u in b] for b in batches] == [["a.csv"], ["b.csv", "c.png"]]
    assert upload_batches([]) == []
