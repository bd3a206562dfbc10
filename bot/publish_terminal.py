"""The terminal publisher: the same progress events as Slack sees, printed for a person.

Used by ``slack-analyst ask``: steps, code and output as they happen, then the answer,
and the generated files saved to a folder. A subscriber of the run's events, beside the ledger.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TextIO

from bot.files_api import FilesApi
from bot.filetypes import safe_filename
from bot.progress import CodeWritten, Done, Failed, Retrying, RunEvent, StepOutput, StepStarted, Usage

OUTPUT_LINES = 12


class TerminalPublisher:
    def __init__(self, out: TextIO, files_api: FilesApi, save_to: Path, *, show_code: bool = True) -> None:
        self.out = out
        self.files_api = files_api
        self.save_to = save_to
        self.show_code = show_code
        self.files_posted = 0  # files saved to ``save_to``
        self.saved: dict[str, Path] = {}  # where each generated file was saved, by file id

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    async def on(self, event: RunEvent) -> None:
        if isinstance(event, StepStarted):
            self.say(f"▶ step {event.step}: {event.title}")
        elif isinstance(event, CodeWritten) and self.show_code:
            self.say(textwrap.indent(event.code.rstrip(), "    │ "))
        elif isinstance(event, StepOutput):
            self._output(event)
        elif isinstance(event, Retrying) and event.rate_limited:
            self.say(f"  … {event.message} in {event.delay:.0f}s (Anthropic asked to wait)")
        elif isinstance(event, Retrying):
            self.say(f"  … {event.message} in {event.delay:.0f}s (attempt {event.attempt} of {event.of})")
        elif isinstance(event, Usage):
            self.say(
                f"  · tokens: {event.tokens:,} ({event.cache_read_tokens:,} read from the cache, "
                f"{event.output_tokens:,} out)"
            )
        elif isinstance(event, Done):
            await self._done(event)
        elif isinstance(event, Failed):
            self.say(f"\n✗ {event.message}")
        # The answer is printed whole at the end, so TextWritten shows nothing.

    def _output(self, output: StepOutput) -> None:
        if output.error_code:
            self.say(f"  ✗ sandbox error: {output.error_code}")
            return
        text = (output.stdout or "").rstrip()
        lines = text.splitlines()
        shown = lines[:OUTPUT_LINES] + (
            [f"… ({len(lines) - OUTPUT_LINES} more lines)"] if len(lines) > OUTPUT_LINES else []
        )
        if shown:
            self.say(textwrap.indent("\n".join(shown), "    » "))
        if output.return_code not in (None, 0):
            self.say(f"  ✗ exit status {output.return_code}: {(output.stderr.strip().splitlines() or [''])[-1]}")

    async def _done(self, done: Done) -> None:
        self.say("\n" + (done.answer or "(no written answer)"))
        for note in done.notes:
            self.say(f"\nnote: {note}")
        if done.files:
            self.save_to.mkdir(parents=True, exist_ok=True)
            for output in done.files:
                path = await self.files_api.download(output, self.save_to)
                target = self.save_to / safe_filename(output.filename, fallback="output")
                path.replace(target)
                self.saved[output.file_id] = target
                self.files_posted += 1
                self.say(f"saved {target}")
