"""``slack-analyst ask``: one analysis in the terminal, through the same engine as Slack."""

from __future__ import annotations

import sys
from pathlib import Path

import anthropic

from bot.clients import anthropic_client
from bot.engine import Engine, InputFile, Job
from bot.errors import describe_anthropic_error
from bot.files_api import FilesApi, digest_file
from bot.filetypes import FileRefused, mime_type_for, precheck, sniff
from bot.ledger import Ledger, open_run
from bot.metrics import Metrics
from bot.notebook import NOTEBOOK_NAME, NotebookRecorder, build_notebook, notebook_json
from bot.progress import Done, Failed, Finished, Outcome, Started
from bot.publish_terminal import TerminalPublisher
from bot.sanitize import clean_question
from bot.settings import Settings
from bot.store import Store
from bot.surface import Subscriber, broadcast


async def ask(settings: Settings, files: list[Path], question: str, *, out: Path, show_code: bool = True) -> int:
    """Analyse ``files``; returns the process exit status."""
    cleaned = clean_question(question)
    if not files and not cleaned.text:
        print("slack-analyst ask: give at least one file or a question (-q)", file=sys.stderr)
        return 2
    claude = anthropic_client(settings)
    async with Store(settings.db_path, pool_size=settings.db_pool_size) as store:
        files_api = FilesApi(claude, store)
        try:
            inputs = []
            for path in files:
                if not path.is_file():
                    print(f"slack-analyst ask: {path}: no such file", file=sys.stderr)
                    return 2
                kind = precheck(path.name, "", path.stat().st_size, settings.max_file_bytes)
                sha256, size, head = digest_file(path)
                sniff(path.name, kind, head)
                file_id = await files_api.ensure_uploaded(
                    path,
                    sha256=sha256,
                    filename=path.name,
                    mime_type=mime_type_for(path.name, kind),
                    size=size,
                )
                inputs.append(InputFile(file_id, path.name, kind.name, size))
            run_id = await open_run(store, settings, question=cleaned.text, files_in=len(inputs))
            publisher = TerminalPublisher(sys.stdout, files_api, out, show_code=show_code)
            recorder = NotebookRecorder(cleaned.text, [file.filename for file in inputs])
            meter = Metrics().follow(source="cli", model=settings.model)  # the same stream as in Slack
            subscribers: tuple[Subscriber, ...] = (Ledger(store, files_api, run_id), meter, publisher, recorder)
            await broadcast(subscribers, Started())
            outcome: Outcome | None = None
            async for event in Engine(claude, settings).run(Job(cleaned.text, inputs)):
                await broadcast(subscribers, event)
                if isinstance(event, Done | Failed):
                    outcome = event
            if outcome is None:  # pragma: no cover - the engine always ends with Done or Failed
                raise RuntimeError("the analysis ended without Done or Failed")
            if settings.notebook:
                write_notebook(recorder, publisher, out)
            finished = Finished(
                outcome.status if isinstance(outcome, Failed) else "succeeded",
                outcome.detail if isinstance(outcome, Failed) else None,
                code_runs=outcome.code_runs,
                files_posted=publisher.files_posted,
            )
            await broadcast(subscribers, finished)
            return 0 if isinstance(outcome, Done) else 1
        except FileRefused as refusal:
            print(f"slack-analyst ask: {str(refusal).replace('*', '')}", file=sys.stderr)
            return 2
        except anthropic.APIError as error:
            print(f"slack-analyst ask: {describe_anthropic_error(error).message}", file=sys.stderr)
            return 1
        finally:
            await claude.close()


def write_notebook(recorder: NotebookRecorder, publisher: TerminalPublisher, out: Path) -> None:
    """``out/analysis.ipynb`` when the analysis answered having run code, with the charts
    embedded from the files the publisher saved."""
    run = recorder.record()
    if run is None:
        return
    images = {
        file_id: path.read_bytes()
        for file_id, path in publisher.saved.items()
        if file_id in run.files and run.files[file_id].mime_type.startswith("image/")
    }
    out.mkdir(parents=True, exist_ok=True)
    target = out / NOTEBOOK_NAME
    target.write_text(notebook_json(build_notebook(run, images)), encoding="utf-8")
    publisher.say(f"saved {target}")
