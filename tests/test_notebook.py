"""analysis.ipynb: the notebook of a run — its structure, that it reruns, and where it goes.

The builder is pure, so most of its rules are checked on events made here; the notebook of
a real run (the scripted analyst's code, run in the fake sandbox) is executed top to bottom
with nbclient in a python3 kernel, next to a copy of the data file and nothing else.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from bot.ask import ask
from bot.notebook import NotebookRecorder, RunRecord, Step, build_notebook, local_paths, notebook_json
from bot.progress import (
    CodeWritten,
    Done,
    Failed,
    FilesReady,
    OutputFile,
    RunEvent,
    StepOutput,
    StepStarted,
    TextWritten,
    Usage,
)
from bot.settings import Settings
from bot.store import Store
from tests.conftest import STREAMING_CSV
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.scripts import Code, Text, scripted
from tests.fakes.slack import FakeSlack
from tests.harness import Harness

PNG = b"\x89PNG\r\n\x1a\n" + b"chart-bytes"
CHART = OutputFile("file_chart", "churn_by_tier.png", "image/png", len(PNG))
TABLE = OutputFile("file_table", "rates.csv", "text/csv", 10)


def done(answer: str = "**Free** churns most.", files: tuple[OutputFile, ...] = ()) -> Done:
    return Done(answer=answer, container_id="c1", usage=Usage(), steps=3, files=files)


async def record(*events: RunEvent, question: str = "what drives churn?") -> NotebookRecorder:
    recorder = NotebookRecorder(question, ["streaming.csv"])
    for event in events:
        await recorder.on(event)
    return recorder


def script_steps(step: int, name: str, source: str, *, output: StepOutput) -> list[RunEvent]:
    """A bash-tool step pair as the engine reports it: the script written, then run."""
    return [
        StepStarted(step, "Working in the sandbox"),
        StepStarted(step, f"Writing {name}", runs_code=False),
        CodeWritten(step, "python", source),
        StepOutput(step),
        StepStarted(step + 1, "Working in the sandbox"),
        StepStarted(step + 1, f"Running {name}"),
        CodeWritten(step + 1, "bash", f"python3 /tmp/{name}"),
        output,
    ]


def code_cells(notebook: Any) -> list[Any]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


async def test_the_notebook_of_a_run_holds_question_loader_steps_and_interpretation() -> None:
    recorder = await record(
        FilesReady(("streaming.csv", "plans.csv")),
        TextWritten("Let me find the file first."),
        StepStarted(1, "Working in the sandbox"),
        StepStarted(1, "Running a command"),
        CodeWritten(1, "bash", "find / -name streaming.csv -not -path '/proc/*' 2>/dev/null"),
        StepOutput(1, stdout="/mnt/data/streaming.csv\n", return_code=0),
        *script_steps(
            2,
            "analysis_1.py",
            "import pandas as pd\ndf = pd.read_csv('/mnt/data/streaming.csv')\nprint(df.churned.mean())\n",
            output=StepOutput(3, stdout="0.291\n", stderr="a warning\n", return_code=0, file_ids=(CHART.file_id,)),
        ),
        CHART,
        StepStarted(4, "Viewing", runs_code=False),
        done(files=(CHART,)),
    )
    run = recorder.record()
    assert run is not None
    notebook = build_notebook(run, {CHART.file_id: PNG})
    nbformat.validate(notebook)
    assert notebook.nbformat == 4 and notebook.metadata.kernelspec.name == "python3"

    first, loader, narration, find, analysis, last = notebook.cells
    assert first.cell_type == "markdown"
    assert "> what drives churn?" in first.source
    assert "`streaming.csv`" in first.source and "`plans.csv`" in first.source
    assert loader.cell_type == "code" and "INPUT_FILES = ['streaming.csv', 'plans.csv']" in loader.source
    assert narration.cell_type == "markdown" and narration.source == "Let me find the file first."
    # One code cell per executed step: the bash command, then the script that step 3 ran
    # (written by step 2, which executes nothing itself). The view (step 4) gets none.
    assert code_cells(notebook) == [loader, find, analysis]
    assert find.source.startswith("%%bash\n") and "find / -name streaming.csv" in find.source
    assert find.outputs[0].name == "stdout" and find.outputs[0].text == "/mnt/data/streaming.csv\n"
    assert analysis.source.startswith("# Step 3: analysis_1.py, which Claude wrote and ran as `python3 /tmp/")
    assert "import pandas as pd" in analysis.source
    # The sandbox's path to the upload is the bare name, found next to the notebook.
    assert "pd.read_csv('streaming.csv')" in analysis.source and "/mnt/data" not in analysis.source
    assert "#   /mnt/data/streaming.csv -> streaming.csv" in loader.source
    stdout, stderr, chart = analysis.outputs
    assert (stdout.name, stdout.text, stderr.name, stderr.text) == ("stdout", "0.291\n", "stderr", "a warning\n")
    assert chart.output_type == "display_data"
    assert base64.b64decode(chart.data["image/png"]) == PNG
    assert last.cell_type == "markdown" and last.source == "## Interpretation\n\n**Free** churns most."
    # And it is a file Jupyter reads back.
    assert nbformat.reads(notebook_json(notebook), as_version=4) == notebook


async def test_python_steps_failures_and_files_without_bytes() -> None:
    recorder = await record(
        StepStarted(1, "Running Python"),
        CodeWritten(1, "python", "print(1/0)"),
        StepOutput(1, stderr="ZeroDivisionError: division by zero\n", return_code=1),
        StepStarted(2, "Running Python"),
        CodeWritten(2, "python", "import time; time.sleep(999)"),
        StepOutput(2, error_code="execution_time_exceeded"),
        StepStarted(3, "Running Python"),
        CodeWritten(3, "python", "write()"),
        StepOutput(3, return_code=0, file_ids=(CHART.file_id, TABLE.file_id)),
        CHART,
        TABLE,
        done(files=(CHART, TABLE)),
    )
    run = recorder.record()
    assert run is not None
    notebook = build_notebook(run)  # no bytes given: nothing embedded
    failed, stopped, wrote = code_cells(notebook)[1:]
    assert failed.source == "# Step 1: Running Python\nprint(1/0)"
    # A step that failed in the sandbox fails here too; Run All goes on past it.
    assert failed.metadata.tags == ["raises-exception"]
    assert stopped.outputs[0].text == "The sandbox stopped this step: execution_time_exceeded\n"
    assert "tags" not in stopped.metadata and "tags" not in wrote.metadata
    assert [o.data["text/plain"] for o in wrote.outputs] == ["(wrote churn_by_tier.png)", "(wrote rates.csv)"]


async def test_a_script_edited_after_it_was_written_is_run_as_a_command() -> None:
    recorder = await record(
        *script_steps(1, "a.py", "print('first')", output=StepOutput(2, stdout="second\n", return_code=0)),
        StepStarted(3, "Editing a.py", runs_code=False),
        CodeWritten(3, "text", "print('second')"),
        StepStarted(4, "Running a.py"),
        CodeWritten(4, "bash", "python3 /tmp/a.py"),
        StepOutput(4, stdout="second\n", return_code=0),
        done(),
    )
    run = recorder.record()
    assert run is not None
    cells = code_cells(build_notebook(run))[1:]
    assert cells[0].source.endswith("\nprint('first')")
    assert cells[1].source.startswith("%%bash\n# a.py was edited in the sandbox after it was written")
    assert cells[1].source.endswith("\npython3 /tmp/a.py")


async def test_no_notebook_without_code_run_or_without_an_answer() -> None:
    only_text = await record(TextWritten("Churn is 29%."), done())
    assert only_text.record() is None
    only_a_view = await record(StepStarted(1, "Reading a.csv", runs_code=False), done())
    assert only_a_view.record() is None
    failed = await record(
        StepStarted(1, "Running Python"),
        CodeWritten(1, "python", "print(1)"),
        StepOutput(1, stdout="1\n", return_code=0),
        Failed("Claude declined.", retryable=False),
    )
    assert failed.record() is None


async def test_credentials_never_reach_the_notebook() -> None:
    secret_key, bot_token = "sk-ant-api03-abcdefghijkl", "xoxb-1234-5678-abcdefgh"
    recorder = await record(
        StepStarted(1, "Running Python"),
        CodeWritten(1, "python", f"key = '{secret_key}'"),
        StepOutput(1, stdout=f"token {bot_token}\n", return_code=0),
        done(answer=f"The key is {secret_key}."),
        question=f"is {bot_token} valid?",
    )
    run = recorder.record()
    assert run is not None
    text = notebook_json(build_notebook(run))
    assert secret_key not in text and bot_token not in text
    assert "[redacted anthropic-key]" in text and "[redacted slack-token]" in text


def test_paths_to_inputs_become_bare_names_and_nothing_else_changes() -> None:
    code = (
        "a = pd.read_csv('/mnt/user-data/uploads/streaming.csv')\n"
        'b = open("inputs/streaming.csv")\n'
        "c = f'{root}/streaming.csv'\n"
        "d = 'streaming.csv.bak'\n"
        "e = '/data/other.csv'\n"
        "!head $DIR/streaming.csv ../streaming.csv\n"
    )
    rewritten, pairs = local_paths(code, ["streaming.csv"])
    assert rewritten == (
        "a = pd.read_csv('streaming.csv')\n"
        'b = open("streaming.csv")\n'
        "c = f'{root}/streaming.csv'\n"
        "d = 'streaming.csv.bak'\n"
        "e = '/data/other.csv'\n"
        "!head $DIR/streaming.csv streaming.csv\n"
    )
    assert pairs == [
        ("/mnt/user-data/uploads/streaming.csv", "streaming.csv"),
        ("inputs/streaming.csv", "streaming.csv"),
        ("../streaming.csv", "streaming.csv"),
    ]


# -- a real run, rerun ------------------------------------------------------------------------


async def test_ask_writes_a_notebook_that_reruns_next_to_the_data(tmp_path: Path, claude: FakeAnthropic) -> None:
    settings = Settings.from_env(
        {
            "ANTHROPIC_API_KEY": claude.api_key,
            "ANTHROPIC_BASE_URL": claude.base_url,
            "ANALYST_DB": str(tmp_path / "db.sqlite"),
        },
        slack=False,
    )
    out = tmp_path / "out"
    assert await ask(settings, [STREAMING_CSV], "what drives churn?", out=out) == 0
    notebook = nbformat.read(out / "analysis.ipynb", as_version=4)
    nbformat.validate(notebook)
    assert sorted(p.name for p in out.iterdir()) == ["analysis.ipynb", "churn_by_tier.png"]  # no data copied

    # The analyst ran two scripts (profile, churn), each written then run: two executed steps.
    steps = code_cells(notebook)[1:]
    assert len(steps) == 2
    assert all(cell.source.startswith("# Step ") and "import pandas as pd" in cell.source for cell in steps)
    assert "`streaming.csv`" in notebook.cells[0].source and "what drives churn?" in notebook.cells[0].source
    assert notebook.cells[-1].source.startswith("## Interpretation\n\n") and "Free" in notebook.cells[-1].source
    # The chart is embedded in the cell of the step that drew it, as the PNG ask saved.
    [drew] = [cell for cell in steps if "savefig" in cell.source]
    [chart] = [o for o in drew.outputs if o.output_type == "display_data"]
    assert base64.b64decode(chart.data["image/png"]) == (out / "churn_by_tier.png").read_bytes()
    recorded = _result(drew)
    text = (out / "analysis.ipynb").read_text()
    assert claude.api_key not in text

    # Someone downloads it next to the data file and runs it top to bottom.
    rerun_dir = tmp_path / "downloads"
    rerun_dir.mkdir()
    shutil.copy(out / "analysis.ipynb", rerun_dir)
    shutil.copy(STREAMING_CSV, rerun_dir / "streaming.csv")
    rerun = nbformat.read(rerun_dir / "analysis.ipynb", as_version=4)
    client = NotebookClient(rerun, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(rerun_dir)}})
    await client.async_execute()
    errors = [o for cell in code_cells(rerun) for o in cell.outputs if o.output_type == "error"]
    assert errors == []
    # The same figures as in Claude's sandbox, and the chart drawn again next to the notebook.
    [drew_again] = [cell for cell in code_cells(rerun) if "savefig" in cell.source]
    assert _result(drew_again) == recorded
    assert (rerun_dir / "outputs" / "churn_by_tier.png").read_bytes().startswith(b"\x89PNG")


def _result(cell: Any) -> dict[str, Any]:
    """The analyst's ``RESULT {json}`` line among a cell's stream outputs."""
    text = "".join(o.text for o in cell.outputs if o.output_type == "stream")
    [line] = [line for line in text.splitlines() if line.startswith("RESULT ")]
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


async def test_ask_writes_no_notebook_when_it_is_off(tmp_path: Path, claude: FakeAnthropic) -> None:
    settings = Settings.from_env(
        {
            "ANTHROPIC_API_KEY": claude.api_key,
            "ANTHROPIC_BASE_URL": claude.base_url,
            "ANALYST_DB": str(tmp_path / "db.sqlite"),
            "ANALYST_NOTEBOOK": "false",
        },
        slack=False,
    )
    assert await ask(settings, [STREAMING_CSV], "what drives churn?", out=tmp_path / "out") == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["churn_by_tier.png"]


# -- Slack ----------------------------------------------------------------------------------


async def test_a_mention_with_data_gets_the_notebook_in_its_thread(
    harness: Harness, env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    asked = await harness.mention("what drives churn?", files=[harness.file("streaming.csv", streaming_csv)])
    files = harness.thread_files(asked)
    names = [f["name"] for f in files]
    assert names[-2:] == ["analysis_code.py", "analysis.ipynb"]
    [posted] = [f for f in files if f["name"] == "analysis.ipynb"]
    content = slack.file(posted["id"]).content
    assert content is not None
    notebook = nbformat.reads(content.decode(), as_version=4)
    nbformat.validate(notebook)
    assert "what drives churn?" in notebook.cells[0].source and "`streaming.csv`" in notebook.cells[0].source
    [drew] = [cell for cell in code_cells(notebook) if "savefig" in cell.source]
    [chart] = [o for o in drew.outputs if o.output_type == "display_data"]
    [png] = [f for f in files if f["name"] == "churn_by_tier.png"]
    assert base64.b64decode(chart.data["image/png"]) == slack.file(png["id"]).content
    text = content.decode()
    for secret in (slack.bot_token, slack.signing_secret, slack.app_token, claude.api_key):
        assert secret not in text
    # It is recorded with the run's posts, so deleting the answer deletes it too.
    async with Store(Path(env["ANALYST_DB"])) as store:
        assert await store.run_of_post(asked.channel, posted["id"]) is not None


async def test_no_notebook_when_it_is_off_or_no_code_ran(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, streaming_csv: bytes
) -> None:
    async with Harness({**env, "ANALYST_NOTEBOOK": "false"}, slack, claude) as h:
        asked = await h.mention("what drives churn?", files=[h.file("streaming.csv", streaming_csv)])
        names = [f["name"] for f in h.thread_files(asked)]
    assert "analysis_code.py" in names and "analysis.ipynb" not in names

    claude.script = scripted(Text("Churn means customers leaving."))
    async with Harness(env, slack, claude) as h:
        asked = await h.mention("what is churn?")
        assert "Churn means customers leaving." in h.thread_text(asked)
        assert h.thread_files(asked) == []

    claude.script = scripted(Code("print(6 * 7)"), Text("42."))
    async with Harness(env, slack, claude) as h:
        asked = await h.mention("what is six times seven?")
        assert [f["name"] for f in h.thread_files(asked)] == ["analysis_code.py", "analysis.ipynb"]


async def test_a_notebook_that_fails_to_upload_is_said_and_the_answer_stands(
    harness: Harness, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script = scripted(Code("print(6 * 7)"), Text("The answer is 42."))
    slack.fail_next("upload", status=400, error="bad upload", times=2)  # the code listing, then the notebook
    asked = await harness.mention("what is 6 times 7?")
    text = harness.thread_text(asked)
    assert "The answer is 42." in text
    assert "I couldn't attach the notebook of the analysis (the upload to Slack failed)" in text
    [run] = await harness.running.analyst.store.all_runs()
    assert run["status"] == "succeeded"


def test_the_loader_cell_says_where_to_put_a_missing_data_file(tmp_path: Path, monkeypatch: Any) -> None:
    run = RunRecord(
        "q",
        ("streaming.csv",),
        (Step(1, "Running Python", code="print(1)", output=StepOutput(1, return_code=0)),),
        answer="a",
    )
    loader = build_notebook(run).cells[1]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    with pytest.raises(FileNotFoundError, match=r"Put streaming.csv next to this notebook \(in .*\), then run it"):
        exec(loader.source, {})
    (tmp_path / "streaming.csv").write_text("a,b\n1,2\n")
    exec(loader.source, {})  # found: no error
