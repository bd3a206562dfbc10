"""More inputs, more outputs and the optional tools (web search/fetch, document skills)."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pandas as pd

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.scripts import Code, Text, WebSearch, scripted
from tests.fakes.slack import FakeSlack
from tests.harness import Harness


async def test_web_search_runs_alongside_code_execution(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = scripted(
        WebSearch("streaming churn benchmarks 2026", results=[("Churn report", "https://example.com/churn", "8% avg")]),
        Code("print(round(0.29 / 0.08, 1))"),
        Text(lambda ctx: f"Your churn is {ctx.last.stdout.strip()}× the industry benchmark."),
    )
    async with Harness(
        {**env, "ANALYST_WEB_SEARCH_MAX_USES": "3", "ANALYST_WEB_FETCH_MAX_USES": "2"}, slack, claude
    ) as h:
        asked = await h.mention("how does our churn compare with the industry?")
        text = h.thread_text(asked)
    assert "3.6× the industry benchmark" in text
    assert "Searching the web for “streaming churn benchmarks 2026”" in text
    tools = claude.message_requests[0].body["tools"]
    assert {"type": "web_search_20260318", "name": "web_search", "max_uses": 3} in tools
    assert {
        "type": "web_fetch_20260318",
        "name": "web_fetch",
        "max_uses": 2,
        "cache_control": {"type": "ephemeral"},
    } in tools


async def test_the_xlsx_skill_returns_a_real_workbook(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    async with Harness({**env, "ANALYST_SKILLS": "xlsx"}, slack, claude) as h:
        asked = await h.mention(
            "turn this CSV into a formatted Excel workbook with a chart", files=[h.file("streaming.csv", streaming_csv)]
        )
        files = h.thread_files(asked)
    request = claude.message_requests[0]
    assert request.body["container"] == {"skills": [{"type": "anthropic", "skill_id": "xlsx", "version": "latest"}]}
    assert request.betas == ["files-api-2025-04-14"]  # container.skills is GA: no skills beta
    [workbook] = [f for f in files if f["name"].endswith(".xlsx")]
    book = openpyxl.load_workbook(io.BytesIO(slack.file(workbook["id"]).content))
    assert any(sheet._charts for sheet in book.worksheets)  # a native Excel chart


async def test_every_generated_file_type_comes_back_charts_first(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = scripted(
        Code(
            "import os, matplotlib.pyplot as plt, pandas as pd\n"
            "from matplotlib.backends.backend_pdf import PdfPages\n"
            "out = 'outputs'\n"
            "os.makedirs(out, exist_ok=True)\n"
            "pd.DataFrame({'a': [1, 2]}).to_csv(f'{out}/table.csv', index=False)\n"
            "pd.DataFrame({'a': [1, 2]}).to_excel(f'{out}/table.xlsx', index=False)\n"
            "fig, ax = plt.subplots(); ax.plot([1, 2, 3])\n"
            "fig.savefig(f'{out}/trend.svg'); fig.savefig(f'{out}/trend.jpg')\n"
            "with PdfPages(f'{out}/report.pdf') as pdf: pdf.savefig(fig)\n"
        ),
        Text("Files made."),
    )
    asked = await harness.mention("make everything")
    names = [f["name"] for f in harness.thread_files(asked) if f["name"] not in ("analysis_code.py", "analysis.ipynb")]
    assert sorted(names) == ["report.pdf", "table.csv", "table.xlsx", "trend.jpg", "trend.svg"]
    assert {names[0], names[1]} == {"trend.jpg", "trend.svg"}  # images first
    by_name = {f["name"]: slack.file(f["id"]) for f in harness.thread_files(asked)}
    assert by_name["report.pdf"].content.startswith(b"%PDF")
    assert by_name["trend.jpg"].content.startswith(b"\xff\xd8\xff")
    assert b"<svg" in by_name["trend.svg"].content


async def test_a_csv_and_a_workbook_in_one_question(
    harness: Harness, claude: FakeAnthropic, streaming_csv: bytes, tmp_path: Path
) -> None:
    regions = tmp_path / "regions.xlsx"
    pd.DataFrame({"country": ["US", "IN", "BR", "DE", "GB"], "region": ["NA", "APAC", "LATAM", "EU", "EU"]}).to_excel(
        regions, index=False
    )
    asked = await harness.mention(
        "join these and tell me about churn",
        files=[harness.file("orders.csv", streaming_csv), harness.file("regions.xlsx", regions.read_bytes())],
    )
    body = claude.message_requests[0].body
    assert [b["type"] for b in body["messages"][0]["content"]].count("container_upload") == 2
    container = claude.containers[claude.responses[0]["container"]["id"]]
    assert sorted(p.name for p in container.inputs.iterdir()) == ["orders.csv", "regions.xlsx"]
    assert "Free" in harness.thread_text(asked)


async def test_text_files_in_other_encodings_are_accepted(harness: Harness, claude: FakeAnthropic) -> None:
    latin = "city,amount\nZürich,10\nSão Paulo,20\nKraków,30\n".encode("cp1252")
    asked = await harness.mention("sum the amounts", files=[harness.file("cities.csv", latin)])
    assert len(claude.uploads_of(latin)) == 1
    assert ":warning:" not in harness.thread_text(asked)
