"""``analysis.ipynb``: the notebook of a run that ran code, so a person can rerun it.

:class:`NotebookRecorder` is a subscriber of the run's progress events (beside the ledger
and the surface's publisher): it keeps each step's code, what the step printed and the files
it produced, and the answer. :func:`build_notebook` — pure — turns that record into an
nbformat 4 notebook:

1. a markdown cell with the question and the input files;
2. a code cell that checks the input files are next to the notebook (a notebook runs in its
   own folder), since Claude's code reads the uploads by name;
3. one code cell per step that ran code, with its stdout and stderr as stream outputs and
   the charts it drew as ``image/png`` (or JPEG) outputs when their bytes are given;
4. the interpretation as a final markdown cell.

What counts as a step that ran code, and how it becomes a cell:

- Python run by the legacy ``code_execution`` tool: the code, as is.
- A bash command: a ``%%bash`` cell, so Jupyter runs it as the sandbox did.
- With the bash tools Claude writes a script with the text editor (``create`` of a ``.py``
  file: it executes nothing by itself) and then runs it (``python3 /tmp/analysis_1.py``).
  Such a pair is one executed step, shown as the script's Python — readable, and run in the
  kernel like any cell — under a comment naming the script. A script that was edited
  (``str_replace``) after it was written can't be rebuilt from the events, which carry only
  the new text; its run stays a ``%%bash`` cell with a note.
- File views, other edits and web searches execute nothing and get no cell.

Claude's prose between steps becomes a markdown cell before the step it introduced. Paths in
the code that name an input file where the sandbox kept it (``/mnt/data/streaming.csv``) are
rewritten to the bare file name, which is found next to the notebook. Credentials anywhere
in the text are redacted, as in everything the bot posts.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

import nbformat
import nbformat.v4
from nbformat import NotebookNode

from bot.progress import (
    CodeWritten,
    Done,
    FilesReady,
    OutputFile,
    RunEvent,
    StepOutput,
    StepStarted,
    TextWritten,
)
from bot.sanitize import redact_secrets

NOTEBOOK_NAME = "analysis.ipynb"

# nbformat's builders carry no annotations; these are their types as used here.
new_code_cell = cast(Callable[..., NotebookNode], nbformat.v4.new_code_cell)
new_markdown_cell = cast(Callable[..., NotebookNode], nbformat.v4.new_markdown_cell)
new_output = cast(Callable[..., NotebookNode], nbformat.v4.new_output)
new_notebook = cast(Callable[..., NotebookNode], nbformat.v4.new_notebook)
writes = cast(Callable[[NotebookNode], str], nbformat.writes)

# What bot.engine.step_title calls text-editor steps: "Writing NAME" (create) and "Editing
# NAME" (str_replace). The progress events carry the file's name only in the title.
_WRITING = "Writing "
_EDITING = "Editing "
# A bash step that runs one Python script (as bot.engine's _RUN_SCRIPT reads it).
_RUN_SCRIPT = re.compile(r"^\s*python3?\s+(?:-u\s+)?(\S+\.py)\s*$")

# Bidirectional overrides and isolates, which make code read differently from what it does.
_BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C])

_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


def clean(text: str) -> str:
    """Text as it may go into the notebook: no credentials, no bidirectional tricks."""
    return redact_secrets(text).translate(_BIDI_CONTROLS)


# -- the record of a run -------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One sandbox step as the events told it."""

    number: int
    title: str = ""
    runs_code: bool = True
    language: str = ""  # "python", "bash" or "text"
    code: str = ""
    output: StepOutput | None = None
    narration: tuple[str, ...] = ()  # Claude's prose just before this step


@dataclass(frozen=True)
class RunRecord:
    """What a notebook is built from: the question, the inputs, the steps, the answer."""

    question: str
    input_files: tuple[str, ...]
    steps: tuple[Step, ...]
    files: Mapping[str, OutputFile] = field(default_factory=dict)  # generated files by id
    answer: str = ""
    notes: tuple[str, ...] = ()


class NotebookRecorder:
    """Collects a run's steps from its progress events (a :class:`bot.surface.Subscriber`).

    ``question`` and ``input_files`` are what the run was asked; a :class:`FilesReady` event
    names the files actually in the sandbox and replaces ``input_files``.
    """

    def __init__(self, question: str, input_files: Sequence[str] = ()) -> None:
        self.question = question
        self.input_files = tuple(input_files)
        self.steps: dict[int, Step] = {}
        self.files: dict[str, OutputFile] = {}
        self.done: Done | None = None
        self._narration: list[str] = []

    async def on(self, event: RunEvent) -> None:
        if isinstance(event, StepStarted):
            step = self.steps.get(event.step) or Step(event.step, narration=tuple(self._narration))
            self._narration.clear()
            self.steps[event.step] = replace(step, title=event.title, runs_code=event.runs_code)
        elif isinstance(event, CodeWritten):
            step = self.steps.get(event.step, Step(event.step))
            self.steps[event.step] = replace(step, language=event.language, code=event.code)
        elif isinstance(event, StepOutput):
            self.steps[event.step] = replace(self.steps.get(event.step, Step(event.step)), output=event)
        elif isinstance(event, TextWritten):
            self._narration.append(event.text)
        elif isinstance(event, OutputFile):
            self.files[event.file_id] = event
        elif isinstance(event, FilesReady):
            self.input_files = tuple(event.names)
        elif isinstance(event, Done):
            self.done = event
            self.files.update((f.file_id, f) for f in event.files)
            self._narration.clear()  # the answer, not narration

    def record(self) -> RunRecord | None:
        """The run, once it answered having run code; None otherwise (no notebook then)."""
        if self.done is None:
            return None
        run = RunRecord(
            question=self.question,
            input_files=self.input_files,
            steps=tuple(self.steps[n] for n in sorted(self.steps)),
            files=dict(self.files),
            answer=self.done.answer,
            notes=self.done.notes,
        )
        return run if executed_steps(run) else None


# -- from steps to cells (pure) -------------------------------------------------------------


@dataclass(frozen=True)
class StepCell:
    """An executed step as a notebook cell: its source and the step whose output it shows."""

    step: Step
    source: str
    narration: tuple[str, ...]


def _editor_target(step: Step) -> tuple[str, str] | None:
    """("create"|"edit", file name) of a text-editor step that wrote a file, else None."""
    if step.runs_code or not step.code:
        return None
    if step.title.startswith(_WRITING):
        return "create", step.title.removeprefix(_WRITING)
    if step.title.startswith(_EDITING):
        return "edit", step.title.removeprefix(_EDITING)
    return None


def executed_steps(run: RunRecord) -> list[StepCell]:
    """The steps that ran code, in order, each with the source of its cell."""
    scripts: dict[str, str | None] = {}  # file name -> text as written (None once edited)
    narration: list[str] = []
    cells: list[StepCell] = []
    for step in run.steps:
        narration.extend(step.narration)
        target = _editor_target(step)
        if target is not None:
            action, name = target
            if action == "create" and step.language == "python":
                scripts[name] = step.code
            elif name in scripts:
                scripts[name] = None
            continue
        if not step.runs_code or not step.code.strip():
            continue
        cells.append(StepCell(step, _cell_source(step, scripts), tuple(narration)))
        narration.clear()
    return cells


def _cell_source(step: Step, scripts: Mapping[str, str | None]) -> str:
    code = step.code.rstrip()
    if step.language != "bash":
        return f"# Step {step.number}: {step.title}\n{code}" if step.title else code
    run = _RUN_SCRIPT.match(code)
    if run is not None:
        path = run.group(1)
        name = path.rsplit("/", 1)[-1]
        if name in scripts:
            script = scripts[name]
            if script is not None:
                header = f"# Step {step.number}: {name}, which Claude wrote and ran as `{code.strip()}`"
                return header + "\n" + script.strip("\n").rstrip()
            note = f"# {name} was edited in the sandbox after it was written; only the sandbox had its final text."
            return f"%%bash\n{note}\n{code}"
    return f"%%bash\n# Step {step.number}: {step.title or 'a command'}\n{code}"


def local_paths(code: str, names: Sequence[str]) -> tuple[str, list[tuple[str, str]]]:
    """``code`` with each path to an input file (``/mnt/data/streaming.csv``,
    ``inputs/streaming.csv``) replaced by the bare name, and the (path, name) pairs replaced."""
    rewrites: list[tuple[str, str]] = []
    for name in names:
        pattern = re.compile(
            r"(?<![\w./{}()\[\]$-])((?:~|\.{1,2})?/(?:[\w.@+-]+/)*|(?:[\w.@+-]+/)+)" + re.escape(name) + r"(?![\w.-])"
        )

        def bare(match: re.Match[str], name: str = name) -> str:
            if (match.group(0), name) not in rewrites:
                rewrites.append((match.group(0), name))
            return name

        code = pattern.sub(bare, code)
    return code, rewrites


# -- the notebook ---------------------------------------------------------------------------


def _stream(name: str, text: str) -> NotebookNode:
    return new_output("stream", name=name, text=clean(text))


def _image(file_id: str, data: bytes, files: Mapping[str, OutputFile]) -> NotebookNode | None:
    mime = next((kind for magic, kind in _IMAGE_MAGIC if data.startswith(magic)), None)
    if mime is None:
        return None
    meta = files.get(file_id)
    label = clean(meta.filename) if meta else file_id
    return new_output("display_data", data={mime: base64.b64encode(data).decode("ascii"), "text/plain": label})


def _outputs(step: Step, files: Mapping[str, OutputFile], images: Mapping[str, bytes]) -> list[NotebookNode]:
    output = step.output
    if output is None:
        return []
    outputs = []
    if output.stdout:
        outputs.append(_stream("stdout", output.stdout))
    if output.stderr:
        outputs.append(_stream("stderr", output.stderr))
    if output.error_code:
        outputs.append(_stream("stderr", f"The sandbox stopped this step: {output.error_code}\n"))
    for file_id in output.file_ids:
        data = images.get(file_id)
        image = _image(file_id, data, files) if data is not None else None
        if image is not None:
            outputs.append(image)
        elif file_id in files:
            wrote = f"(wrote {clean(files[file_id].filename)})"
            outputs.append(new_output("display_data", data={"text/plain": wrote}))
    return outputs


def _question_cell(run: RunRecord) -> NotebookNode:
    question = clean(run.question).strip()
    lines = question.splitlines() or ["(no question: a general look at the data)"]
    quoted = "\n".join(f"> {line}" if line else ">" for line in lines)
    names = ", ".join(f"`{clean(name).replace('`', '')}`" for name in run.input_files)
    return new_markdown_cell(
        "## Question\n\n"
        f"{quoted}\n\n"
        f"**Data:** {names or 'none (the analysis ran without a file)'}\n\n"
        "This notebook replays the analysis Claude ran in its code-execution sandbox: one code cell per "
        "step, with what the step printed there and the charts it drew. To run it again, put the data "
        "file" + ("s" if len(run.input_files) != 1 else "") + " next to this notebook and run all cells.",
        id="question",
    )


def _loader_cell(names: Sequence[str], rewrites: Sequence[tuple[str, str]]) -> NotebookNode:
    listed = ", ".join(repr(name) for name in names)
    lines = [
        "# The data. In Claude's sandbox the uploads sat in the container's input directory and the code",
        "# found them by name; here they are read from this notebook's folder.",
    ]
    if rewrites:
        lines.append("# The code below named the sandbox's copies by path; it reads these files instead:")
        lines.extend(f"#   {path} -> {name}" for path, name in rewrites)
    lines += [
        "import os",
        "from pathlib import Path",
        "",
        "# Jupyter runs a notebook in its own folder; JupyterLab and VS Code also say where it is.",
        '_notebook = os.environ.get("JPY_SESSION_NAME") or globals().get("__vsc_ipynb_file__")',
        "if _notebook and Path(_notebook).is_file():",
        "    os.chdir(Path(_notebook).parent)",
        "",
        f"INPUT_FILES = [{listed}]",
        "missing = [name for name in INPUT_FILES if not Path(name).is_file()]",
        "if missing:",
        "    raise FileNotFoundError(",
        "        f\"Put {', '.join(missing)} next to this notebook (in {Path.cwd()}), then run it again.\"",
        "    )",
        'print("Input files:", ", ".join(f"{name} ({Path(name).stat().st_size:,} bytes)" for name in INPUT_FILES))',
    ]
    return new_code_cell("\n".join(clean(line) for line in lines), id="load-inputs")


def _answer_cell(run: RunRecord) -> NotebookNode:
    text = clean(run.answer).strip() or "(Claude wrote no interpretation.)"
    notes = "".join(f"\n\n*Note: {clean(note)}*" for note in run.notes)
    return new_markdown_cell(f"## Interpretation\n\n{text}{notes}", id="interpretation")


def build_notebook(run: RunRecord, images: Mapping[str, bytes] | None = None) -> NotebookNode:
    """The notebook of ``run`` (nbformat 4, validated). ``images`` maps generated file ids to
    their bytes: charts a step produced are embedded in its cell when given here."""
    images = images or {}
    steps = executed_steps(run)
    sources: list[str] = []
    rewrites: list[tuple[str, str]] = []
    for cell in steps:
        source, replaced = local_paths(cell.source, run.input_files)
        sources.append(source)
        rewrites.extend(pair for pair in replaced if pair not in rewrites)
    cells = [_question_cell(run)]
    if run.input_files:
        cells.append(_loader_cell(run.input_files, rewrites))
    for cell, source in zip(steps, sources, strict=True):
        step = cell.step
        if cell.narration:
            text = clean("\n\n".join(part.strip() for part in cell.narration)).strip()
            if text:
                cells.append(new_markdown_cell(text, id=f"before-step-{step.number}"))
        failed = step.output is not None and step.output.return_code not in (None, 0)
        code = new_code_cell(
            clean(source),
            id=f"step-{step.number}",
            outputs=_outputs(step, run.files, images),
            # A step that failed in the sandbox fails again here; Run All goes on past it.
            metadata={"tags": ["raises-exception"]} if failed else {},
        )
        cells.append(code)
    cells.append(_answer_cell(run))
    notebook = new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.validate(notebook)
    return notebook


def notebook_json(notebook: NotebookNode) -> str:
    """The ``.ipynb`` file's text."""
    return writes(notebook) + "\n"
