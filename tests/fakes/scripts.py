"""The scripted "model" behind the fake Anthropic API.

A script is plain Python, not an LLM: a callable that receives a :class:`ScriptContext` (the
question, the files in the container, earlier turns, the tool version, and the results of the
code it has run so far in this turn) and yields :data:`Action` s.  Scripts are usually generator
functions, so they can look at what the code printed before deciding what to do next::

    def chart_script(ctx: ScriptContext) -> Iterator[Action]:
        yield Code("import os; os.makedirs('outputs', exist_ok=True); open('outputs/n.txt', 'w').write('1')")
        yield Text(f"Wrote {len(ctx.last.files)} file.")

    api.script = chart_script
    api.script = scripted(Code("print('<!channel>')"), Text(lambda ctx: ctx.last.stdout))

The fake API (``tests/fakes/anthropic.py``) turns every action into the content blocks the real
API returns for the request's code-execution tool version, really runs the code in the
sandbox, and handles ``pause_turn`` continuations statelessly by replaying the script against
the content the client echoes back.  :func:`analyst` is the default script: a competent data
analyst that finds the files it was told about by name (uploads land in the container's input
directory, not in the working directory), profiles them, analyses churn (or describes the
numbers), saves a chart under ``outputs/`` in the working directory and answers in Markdown
quoting the figures its code printed.

Conversations: on a later user turn in the same thread (``ctx.is_follow_up``) the analyst
answers follow-ups ("now split that by country", "by device", "what about Premium users?")
from the working state its earlier turns left in the container (:data:`STATE_FILE`, printing
``STATE reused analyst/state.json``), recomputing the new breakdown from the input file; in a
fresh container (no state) it rebuilds the same plan from the files and the conversation and
gets the same numbers.  With no data file at all it says so ("I can't find the data file").

Web tools: :class:`WebSearch` and :class:`WebFetch` produce the real ``server_tool_use`` /
``web_search_tool_result`` / ``web_fetch_tool_result`` blocks.  Skills: ``ctx.skills`` lists the
skills loaded in the container; with the ``xlsx`` skill an Excel request gets a real workbook.
:func:`output_files_code` writes sample outputs of many types (SVG/JPG/PDF/XLSX/CSV/...).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

__all__ = [
    "STATE_FILE",
    "Action",
    "Code",
    "CodeRun",
    "GeneratedFile",
    "Hold",
    "MaxTokens",
    "Pause",
    "Refuse",
    "Script",
    "ScriptContext",
    "Text",
    "ToolError",
    "Turn",
    "WebFetch",
    "WebFetchRun",
    "WebResult",
    "WebSearch",
    "WebSearchRun",
    "analyst",
    "cite",
    "output_files_code",
    "question_mentions",
    "scripted",
    "wants_spreadsheet",
]


# --------------------------------------------------------------------------------------------
# Actions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    """The model writes Python and runs it with the code execution tool.

    ``source`` may be a callable, evaluated with the context when the action runs.  With the
    bash tool versions the code is first created as ``filename`` (default ``/tmp/analysis_<n>.py``,
    outside the working directory so it is not returned as a generated file) with the text
    editor tool, then run as ``python3 <filename>``.  Code runs in the working directory;
    uploads are elsewhere (find them by name), and files it writes there come back.
    """

    source: str | Callable[[ScriptContext], str]
    filename: str | None = None


@dataclass(frozen=True)
class Text:
    """A text block; a callable is given the context, e.g. to quote what the code printed.

    ``citations`` (or a callable returning them) are attached to the block as the real API
    does after a web search, e.g. ``Text("...", citations=lambda c: [cite(c.web_searches[0].results[0])])``;
    streamed, they arrive as ``citations_delta`` events.
    """

    text: str | Callable[[ScriptContext], str]
    citations: Sequence[Mapping[str, Any]] | Callable[[ScriptContext], Sequence[Mapping[str, Any]]] = ()


@dataclass(frozen=True)
class Pause:
    """End this response with ``stop_reason="pause_turn"``; the client continues it.

    There must be content since the previous pause (the real API never pauses empty-handed).
    """


@dataclass(frozen=True)
class Refuse:
    """Stop with ``stop_reason="refusal"`` (optionally after some partial text)."""

    text: str = ""
    category: str | None = None
    explanation: str | None = "This request was declined by the fake model's script."


@dataclass(frozen=True)
class MaxTokens:
    """Stop with ``stop_reason="max_tokens"`` after the partial text ``text``."""

    text: str = "The analysis was cut short because"


@dataclass(frozen=True)
class Hold:
    """The model stalls mid-answer until the test says so: ``reached`` is set when the
    answer gets here, and it goes on once ``gate`` is set. Emits no content (so a
    continuation replays past it). For slow analyses, restarts and shutdowns."""

    gate: asyncio.Event
    reached: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class ToolError:
    """A code-execution tool-result error block instead of a result, e.g. ``execution_time_exceeded``,
    ``output_file_too_large``, ``unavailable``, ``too_many_requests``, ``invalid_tool_input``."""

    error_code: str
    source: str = "print('working...')"


@dataclass(frozen=True)
class WebResult:
    """One web search hit.  The real API never returns the snippet in clear (it is in the opaque
    ``encrypted_content``); the fake encodes it there, so replayed searches recover it."""

    title: str
    url: str
    snippet: str = ""
    #: ``page_age`` as the API reports it (e.g. ``"April 30, 2025"``); None is sent as null.
    page_age: str | None = None


#: A result as scripts may give it: a :class:`WebResult` or ``(title, url[, snippet[, page_age]])``.
WebResultLike: TypeAlias = WebResult | tuple[str | None, ...]


@dataclass(frozen=True)
class WebSearch:
    """The model uses the server-side web search tool (needs a ``web_search_*`` tool in the request).

    ``results`` are ``WebResult`` s or ``(title, url[, snippet[, page_age]])`` tuples; results
    outside the tool's ``allowed_domains`` (or inside ``blocked_domains``) are dropped, as the
    real tool filters them.  ``error`` scripts a ``web_search_tool_result_error`` instead
    (``unavailable``, ``too_many_requests``, ``query_too_long``, ``invalid_tool_input``, ...);
    going past the tool's ``max_uses`` yields ``max_uses_exceeded`` by itself.
    """

    query: str | Callable[[ScriptContext], str]
    results: Sequence[WebResultLike] = ()
    error: str | None = None


@dataclass(frozen=True)
class WebFetch:
    """The model uses the server-side web fetch tool (needs a ``web_fetch_*`` tool in the request).

    The page comes back as a plain-text ``document``.  Like the real tool, the fake only fetches
    URLs already in the conversation (user text, or earlier web search / fetch results):
    otherwise the result is ``url_not_in_prior_context``; a URL outside the tool's domain
    filters gives ``url_not_allowed``, one over 250 characters ``url_too_long``, going past
    ``max_uses`` ``max_uses_exceeded``.  ``error`` scripts any other error code.
    """

    url: str | Callable[[ScriptContext], str]
    text: str = ""
    title: str | None = None
    error: str | None = None


Action: TypeAlias = Code | Text | Pause | Refuse | MaxTokens | ToolError | Hold | WebSearch | WebFetch
Script: TypeAlias = Callable[["ScriptContext"], Iterable[Action]]


def scripted(*actions: Action) -> Script:
    """A script that always plays the same actions, e.g. ``scripted(Code(...), Pause(), Text(...))``."""

    def script(ctx: ScriptContext) -> Iterator[Action]:
        yield from actions

    script.__name__ = f"scripted({', '.join(type(a).__name__ for a in actions)})"
    return script


# --------------------------------------------------------------------------------------------
# What a script can see
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedFile:
    """A file the code wrote, registered in the Files API (downloadable)."""

    file_id: str
    filename: str
    #: Path relative to the working directory, e.g. ``outputs/churn_by_tier.png`` ("" when replayed).
    path: str = ""


@dataclass
class CodeRun:
    """The outcome of one :class:`Code` (or :class:`ToolError`) action."""

    source: str
    stdout: str = ""
    stderr: str = ""
    return_code: int = 0
    files: list[GeneratedFile] = field(default_factory=list)
    #: Tool-result error code (``execution_time_exceeded``, ...) instead of a result.
    error_code: str | None = None
    #: True when rebuilt from content the client echoed back (pause_turn continuation).
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.error_code is None and self.return_code == 0

    def tagged_lines(self, tag: str) -> list[str]:
        """The rest of every stdout line that starts with ``tag`` + space."""
        prefix = tag + " "
        return [line[len(prefix) :] for line in self.stdout.splitlines() if line.startswith(prefix)]

    def tagged_json(self, tag: str) -> list[Any]:
        """Every ``TAG {json}`` line of stdout, parsed."""
        values = []
        for payload in self.tagged_lines(tag):
            try:
                values.append(json.loads(payload))
            except ValueError:
                continue
        return values


@dataclass
class WebSearchRun:
    """The outcome of one :class:`WebSearch` (live or replayed)."""

    query: str
    results: list[WebResult] = field(default_factory=list)
    #: ``web_search_tool_result_error`` code instead of results.
    error_code: str | None = None
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.error_code is None


@dataclass
class WebFetchRun:
    """The outcome of one :class:`WebFetch` (live or replayed)."""

    url: str
    text: str = ""
    title: str | None = None
    #: ``web_fetch_tool_result_error`` code instead of a page.
    error_code: str | None = None
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.error_code is None


@dataclass(frozen=True)
class Turn:
    """One earlier message of the conversation."""

    role: str
    text: str
    blocks: tuple[Mapping[str, Any], ...] = ()


@dataclass
class ScriptContext:
    """Everything the scripted model knows when it decides its next action."""

    #: Text of the newest user turn (all its text blocks).
    question: str
    #: The code-execution tool type in the request (``code_execution_20260521``, ...) or None.
    tool_type: str | None
    #: Messages before the newest user turn.
    history: list[Turn] = field(default_factory=list)
    #: The container's directory on the host, which stands for its ``/`` (None without a
    #: code-execution tool): where Claude would search ``/`` for a file, the scripted model
    #: searches here (the fake cannot give code a ``/`` of its own).
    container_dir: Path | None = None
    #: The file names the model was told about: ``<file name="...">`` tags in the user turns,
    #: then the names of the files behind the request's ``container_upload`` blocks.
    file_names: list[str] = field(default_factory=list)
    #: File ids of the ``container_upload`` blocks in the newest user turn.
    uploaded_file_ids: list[str] = field(default_factory=list)
    #: Results of the code run so far in this turn (including replayed ones), in order.
    runs: list[CodeRun] = field(default_factory=list)
    #: Text blocks produced so far in this turn.
    texts: list[str] = field(default_factory=list)
    #: Web searches / fetches made so far in this turn (including replayed ones), in order.
    web_searches: list[WebSearchRun] = field(default_factory=list)
    web_fetches: list[WebFetchRun] = field(default_factory=list)
    #: Skills loaded in the container for this request: ``{"type", "skill_id", "version"}``.
    skills: list[dict[str, str]] = field(default_factory=list)
    model: str = ""
    system: str = ""
    max_tokens: int = 0
    #: The raw request body.
    request: Mapping[str, Any] = field(default_factory=dict)

    @property
    def has_code_tool(self) -> bool:
        return self.tool_type is not None

    @property
    def bash_tools(self) -> bool:
        """True for the bash + text editor versions (everything but ``code_execution_20250522``)."""
        return self.tool_type is not None and self.tool_type != "code_execution_20250522"

    @property
    def last(self) -> CodeRun:
        """The latest code run of this turn."""
        if not self.runs:
            raise LookupError("no code has run yet in this turn")
        return self.runs[-1]

    @property
    def user_turns_before(self) -> int:
        """How many user turns precede the newest one (0 for the first question)."""
        return sum(1 for turn in self.history if turn.role == "user" and turn.text)

    @property
    def is_follow_up(self) -> bool:
        """True when the model already answered earlier in this conversation."""
        return any(turn.role == "assistant" for turn in self.history)

    @property
    def earlier_questions(self) -> list[str]:
        """Texts of the earlier user turns, oldest first."""
        return [turn.text for turn in self.history if turn.role == "user" and turn.text]

    @property
    def has_web_search(self) -> bool:
        return any(str(t.get("type", "")).startswith("web_search_") for t in self.request.get("tools") or [])

    @property
    def has_web_fetch(self) -> bool:
        return any(str(t.get("type", "")).startswith("web_fetch_") for t in self.request.get("tools") or [])

    def has_skill(self, skill_id: str) -> bool:
        """Is this skill (``xlsx``, ``pptx``, ``docx``, ``pdf`` or a custom id) loaded?"""
        return any(skill.get("skill_id") == skill_id for skill in self.skills)

    @property
    def generated_files(self) -> list[GeneratedFile]:
        """Every file generated so far in this turn."""
        return [f for run in self.runs for f in run.files]


def cite(result: WebResult, cited_text: str | None = None) -> dict[str, Any]:
    """A ``web_search_result_location`` citation of ``result`` for :class:`Text`."""
    index = base64.b64encode(json.dumps({"url": result.url}).encode()).decode()
    return {
        "type": "web_search_result_location",
        "url": result.url,
        "title": result.title,
        "encrypted_index": index,
        "cited_text": cited_text if cited_text is not None else result.snippet[:150],
    }


# --------------------------------------------------------------------------------------------
# The default script: a competent analyst
# --------------------------------------------------------------------------------------------

#: Where the analyst keeps its working state in the container, relative to its temporary
#: directory (``/tmp``): the plan (data file, target column, breakdowns) and what it found.
#: Scratch, outside the working directory, so it is never returned as a generated file.
STATE_FILE = "analyst/state.json"

#: What every analyst program starts with.  Uploads are in the container's input directory,
#: which is not the working directory and has no documented path, so they are found by name
#: as the system prompt says: the working directory first, then the whole sandbox (``find /``;
#: in the fake the container's directory, ``__ROOT__``).  Results go to ``outputs/`` in the
#: working directory; state to the temporary directory.
_READERS = r"""
import json, os, pathlib, tempfile
import pandas as pd

SANDBOX_ROOT = __ROOT__
OUTPUT_DIR = pathlib.Path("outputs")
STATE_PATH = pathlib.Path(tempfile.gettempdir()) / __STATE__


def locate(name):  # an uploaded file by name: the working directory, else anywhere in the sandbox
    if pathlib.Path(name).is_file():
        return pathlib.Path(name)
    for dirpath, dirnames, filenames in os.walk(SANDBOX_ROOT):
        dirnames[:] = sorted(d for d in dirnames if os.path.join(dirpath, d) != "/proc")
        if name in filenames:
            return pathlib.Path(dirpath, name)
    return None


def need(name):
    path = locate(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not in the sandbox")
    return path


def read_table(path):
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix == ".tsv":
        return pd.read_csv(path, sep="\t")
    if suffix == ".txt":
        return pd.read_csv(path, sep=None, engine="python")
    if suffix in (".xlsx", ".xls"):
        return pd.read_excel(path)
    if suffix == ".json":
        try:
            return pd.read_json(path)
        except ValueError:
            return pd.read_json(path, lines=True)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    raise ValueError(f"unsupported file type {suffix or '(none)'}")
"""

#: Finds the files named in ``names`` (``files``: name -> path; ``missing``) and lists earlier
#: outputs (``earlier``).
_LIST_FILES = r"""
print("WORKDIR " + json.dumps(sorted(os.listdir("."))))
found = {name: locate(name) for name in names}
files = {name: path for name, path in found.items() if path is not None}
missing = [name for name, path in found.items() if path is None]
for name, path in files.items():
    print(f"FOUND {name} at /{os.path.relpath(path.absolute(), SANDBOX_ROOT)}")
earlier = sorted(p.name for p in OUTPUT_DIR.rglob("*") if p.is_file()) if OUTPUT_DIR.is_dir() else []
print("OUTPUTS " + json.dumps(earlier))
"""

#: Profiles every input: a ``PROFILE`` JSON line each (with the values of low-cardinality
#: columns, for follow-ups that filter on them) and a peek at the first rows.
_PROFILE_FILES = r"""
if not files:
    print("NO_INPUT_FILES (looked for: " + (", ".join(missing) or "no file names given") + ")")
for name, path in files.items():
    try:
        df = read_table(path)
    except Exception as exc:
        print("PROFILE " + json.dumps({"file": name, "error": f"{type(exc).__name__}: {exc}"}))
        continue
    nunique = {str(c): int(n) for c, n in df.nunique().items()}
    profile = {
        "file": name,
        "rows": int(df.shape[0]),
        "columns": [str(c) for c in df.columns],
        "dtypes": {str(c): str(t) for c, t in df.dtypes.items()},
        "numeric": [str(c) for c in df.select_dtypes("number").columns],
        "nunique": nunique,
        "values": {
            str(c): sorted(str(v) for v in df[c].dropna().unique()) for c in df.columns if nunique[str(c)] <= 12
        },
    }
    print("PROFILE " + json.dumps(profile))
    print(f"== {name}: {df.shape[0]} rows x {df.shape[1]} columns")
    print(df.head().to_string())
"""

PROFILE_CODE = _READERS + "\nnames = __FILES__\n" + _LIST_FILES + _PROFILE_FILES

_CLEAN_TARGET = r"""
target = PLAN["target"]
if df[target].dtype == object or str(df[target].dtype) in ("str", "string"):
    df[target] = df[target].astype(str).str.lower().isin(["1", "yes", "true", "y"]).astype(int)
df[target] = df[target].astype(float)
"""

_SAVE_STATE = r"""
try:
    state = json.loads(STATE_PATH.read_text()) if STATE_PATH.is_file() else {}
except ValueError:
    state = {}
breakdowns = state.get("breakdowns", []) + STATE_UPDATE.get("breakdowns", [])
state.update(STATE_UPDATE)
state["breakdowns"] = breakdowns
STATE_PATH.parent.mkdir(parents=True, exist_ok=True)
STATE_PATH.write_text(json.dumps(state, indent=1))
print("STATE saved " + __STATE__)
"""

#: Matplotlib ready, and ``df`` loaded from the file a plan names.
_LOAD_PLANNED_FILE = (
    _READERS
    + r"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

PLAN = __PLAN__
df = read_table(need(PLAN["file"]))
"""
)

_CHURN_CODE = (
    _LOAD_PLANNED_FILE
    + r"""
"""
    + _CLEAN_TARGET
    + r"""
result = {"file": PLAN["file"], "rows": int(len(df)), "overall": round(float(df[target].mean()), 4),
          "by_category": {}, "bands": {}}
for col in PLAN["categorical"]:
    grouped = df.groupby(col)[target].agg(["mean", "size"]).sort_values("mean", ascending=False)
    result["by_category"][col] = [
        {"value": str(value), "rate": round(float(row["mean"]), 4), "n": int(row["size"])}
        for value, row in grouped.iterrows()
    ]
for col, cut in PLAN["bands"].items():
    if cut is None:
        cut = float(df[col].median())
    below = df[col] < cut
    low, high = df.loc[below, target].mean(), df.loc[~below, target].mean()
    result["bands"][col] = {
        "cut": cut, "below": round(float(low), 4), "at_or_above": round(float(high), 4),
        "n_below": int(below.sum()), "n_at_or_above": int((~below).sum()),
        "ratio": round(float(low / high), 2) if high else None,
    }

spreads = {col: rows[0]["rate"] - rows[-1]["rate"] for col, rows in result["by_category"].items() if rows}
chart_col = PLAN["chart"] if PLAN["chart"] in spreads else (max(spreads, key=spreads.get) if spreads else None)
if chart_col is not None:
    rows = sorted(result["by_category"][chart_col], key=lambda r: r["rate"], reverse=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar([r["value"] for r in rows], [r["rate"] * 100 for r in rows], color="#4a7ebb")
    ax.set_ylabel("churn rate (%)")
    ax.set_title(f"Churn rate by {chart_col}")
    for i, r in enumerate(rows):
        ax.annotate(f"{r['rate'] * 100:.1f}%", (i, r["rate"] * 100), ha="center", va="bottom")
    fig.tight_layout()
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUTPUT_DIR / f"churn_by_{chart_col}.png", dpi=80)
    result["chart"] = f"churn_by_{chart_col}.png"
    result["chart_column"] = chart_col
STATE_UPDATE = {"kind": "churn", "plan": PLAN, "overall": result["overall"], "rows": result["rows"]}
"""
    + _SAVE_STATE
    + r"""
print("RESULT " + json.dumps(result))
"""
)

_DESCRIBE_CODE = (
    _LOAD_PLANNED_FILE
    + r"""
numeric = df.select_dtypes("number")
stats = {}
for col in numeric.columns[:8]:
    s = numeric[col].dropna()
    stats[str(col)] = {"mean": round(float(s.mean()), 3), "median": round(float(s.median()), 3),
                       "min": round(float(s.min()), 3), "max": round(float(s.max()), 3)}
result = {"file": PLAN["file"], "rows": int(len(df)), "columns": int(df.shape[1]), "stats": stats}
if len(numeric.columns):
    col = max(numeric.columns, key=lambda c: float(numeric[c].std() or 0) / (abs(float(numeric[c].mean())) or 1))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(numeric[col].dropna(), bins=30, color="#4a7ebb")
    ax.set_title(f"Distribution of {col}")
    fig.tight_layout()
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUTPUT_DIR / f"hist_{col}.png", dpi=80)
    result["chart"] = f"hist_{col}.png"
STATE_UPDATE = {"kind": "describe", "plan": PLAN, "rows": result["rows"]}
"""
    + _SAVE_STATE
    + r"""
print("RESULT " + json.dumps(result))
"""
)

#: A follow-up's first step: the state an earlier turn left behind and what is in the
#: container now (the files named in the conversation or in that state, with the values of
#: their low-cardinality columns, and earlier outputs).
FOLLOW_UP_PROBE_CODE = (
    _READERS
    + r"""
state = None
if STATE_PATH.is_file():
    try:
        state = json.loads(STATE_PATH.read_text())
    except ValueError:
        print("STATE unreadable " + __STATE__)
data_file = str((state or {}).get("plan", {}).get("file", ""))
names = list(dict.fromkeys(__FILES__ + ([data_file] if data_file else [])))
"""
    + _LIST_FILES
    + r"""
if state is not None:
    if data_file and data_file in files:
        print("STATE reused " + __STATE__)
    else:
        print("STATE stale " + __STATE__ + f": {data_file or '(no file)'} is not in the sandbox")
    print("STATE_JSON " + json.dumps(state))
else:
    print("NO_STATE")
"""
    + _PROFILE_FILES
)

_BREAKDOWN_CODE = (
    _READERS
    + r"""
import re
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

PLAN = __PLAN__
ASK = __ASK__
df = read_table(need(PLAN["file"]))
"""
    + _CLEAN_TARGET
    + r"""
for join in ASK["joins"]:
    other = read_table(need(join["file"])).drop_duplicates(join["on"])
    df = df.merge(other, on=join["on"], how="left")
    print(f"JOINED {join['file']} on {join['on']}")
overall = float(df[target].mean())
segment = df
for col, value in ASK["filters"].items():
    segment = segment[segment[col].astype(str) == value]


def breakdown(col, kind, cut):
    if kind == "band":
        if cut is None:
            cut = float(df[col].median())
        labels = segment[col].lt(cut).map({True: f"< {cut:g}", False: f">= {cut:g}"})
    else:
        labels = segment[col].astype(str)
    grouped = segment.groupby(labels)[target].agg(["mean", "size"]).sort_values("mean", ascending=False)
    rows = [{"value": str(v), "rate": float(r["mean"]), "n": int(r["size"])} for v, r in grouped.iterrows()]
    return rows, cut


by, kind, cut = ASK["by"], ASK["kind"], ASK["cut"]
if by == "auto":
    options = {col: breakdown(col, "category", None)[0] for col in ASK["candidates"]}
    options = {col: rows for col, rows in options.items() if len(rows) >= 2}
    by = max(options, key=lambda c: options[c][0]["rate"] - options[c][-1]["rate"]) if options else None
    rows = options.get(by, [])
else:
    rows, cut = breakdown(by, kind, cut)
result = {
    "file": PLAN["file"], "by": by, "kind": kind, "cut": cut, "filters": ASK["filters"],
    "overall": overall, "customers": int(len(df)), "rows": rows,
    "joined": [j["file"] for j in ASK["joins"] if by in j["columns"]],
}
if ASK["filters"]:
    rate = float(segment[target].mean()) if len(segment) else None
    result["segment"] = {"rate": rate, "n": int(len(segment))}
if rows:
    suffix = "".join("_" + re.sub(r"[^a-z0-9]+", "-", str(v).lower()).strip("-") for v in ASK["filters"].values())
    name = f"churn_by_{re.sub(r'[^A-Za-z0-9_-]+', '_', str(by))}{suffix}.png"
    base = result["segment"]["rate"] if ASK["filters"] else result["overall"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar([r["value"] for r in rows], [r["rate"] * 100 for r in rows], color="#4a7ebb")
    if base is not None:
        ax.axhline(base * 100, color="#888888", linestyle="--", linewidth=1)
    ax.set_ylabel("churn rate (%)")
    where = " / ".join(ASK["filters"].values())
    ax.set_title(f"Churn rate by {by}" + (f" ({where})" if where else ""))
    for i, r in enumerate(rows):
        ax.annotate(f"{r['rate'] * 100:.1f}%", (i, r["rate"] * 100), ha="center", va="bottom")
    fig.tight_layout()
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUTPUT_DIR / name, dpi=80)
    result["chart"] = name
STATE_UPDATE = {"kind": "churn", "plan": PLAN, "breakdowns": [{"by": by, "filters": ASK["filters"], "rows": rows}]}
"""
    + _SAVE_STATE
    + r"""
print("RESULT " + json.dumps(result))
"""
)

#: Writes the tables of an analysis as a formatted Excel workbook (openpyxl: a Summary sheet
#: with the key figures, header styling, number formats, frozen panes and a native bar chart,
#: plus one sheet per further breakdown) or, without the xlsx skill, as one tidy CSV.
_EXPORT_CODE = r"""
import csv, json, pathlib, re

SPEC = __SPEC__
OUTPUT_DIR = pathlib.Path("outputs")
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
path = OUTPUT_DIR / SPEC["filename"]
if SPEC["format"] == "xlsx":
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Alignment, Font, PatternFill

    HEADER_FONT = Font(bold=True, color="FFFFFF")
    HEADER_FILL = PatternFill("solid", fgColor="1F4E79")

    def write_table(ws, top, table):
        for col, header in enumerate([table["name"], "Customers", "Churn rate"], start=1):
            cell = ws.cell(row=top, column=col, value=header)
            cell.font, cell.fill, cell.alignment = HEADER_FONT, HEADER_FILL, Alignment(horizontal="center")
        for i, (group, n, rate) in enumerate(table["rows"], start=1):
            ws.cell(row=top + i, column=1, value=group)
            ws.cell(row=top + i, column=2, value=n).number_format = "#,##0"
            ws.cell(row=top + i, column=3, value=rate).number_format = "0.0%"
        chart = BarChart()
        chart.type = "col"
        chart.title = table["title"]
        chart.y_axis.title = "Churn rate"
        chart.y_axis.numFmt = "0%"
        chart.x_axis.title = table["name"]
        chart.add_data(Reference(ws, min_col=3, min_row=top, max_row=top + len(table["rows"])), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=top + 1, max_row=top + len(table["rows"])))
        chart.legend = None
        chart.height, chart.width = 7.5, 13
        ws.add_chart(chart, f"E{top}")
        widest = max([len(str(r[0])) for r in table["rows"]] + [len(table["name"])])
        ws.column_dimensions["A"].width = max(ws.column_dimensions["A"].width or 0, widest + 4, 14)
        ws.column_dimensions["B"].width = ws.column_dimensions["C"].width = 13

    wb = Workbook()
    summary = wb.active
    summary.title = "Summary"
    summary["A1"] = SPEC["title"]
    summary["A1"].font = Font(bold=True, size=14)
    row = 3
    for label, value, fmt in SPEC["facts"]:
        summary.cell(row=row, column=1, value=label).font = Font(bold=True)
        cell = summary.cell(row=row, column=2, value=value)
        if fmt:
            cell.number_format = fmt
        row += 1
    summary.column_dimensions["A"].width = max(len(f[0]) for f in SPEC["facts"]) + 4
    first, *rest = SPEC["tables"]
    write_table(summary, row + 1, first)
    summary.freeze_panes = f"A{row + 2}"
    for table in rest:
        ws = wb.create_sheet(title=re.sub(r"[\[\]:*?/\\]", "_", "By " + table["name"])[:31])
        write_table(ws, 1, table)
        ws.freeze_panes = "A2"
    wb.save(path)
    print("WORKBOOK " + json.dumps({"file": path.name, "sheets": wb.sheetnames, "charts": len(SPEC["tables"])}))
else:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["breakdown", "group", "customers", "churn_rate"])
        for table in SPEC["tables"]:
            for group, n, rate in table["rows"]:
                writer.writerow([table["name"], group, n, rate])
    print("CSV " + json.dumps({"file": path.name, "rows": sum(len(t["rows"]) for t in SPEC["tables"])}))
"""

#: Cut points an analyst would choose for well-known columns (others: the median).
BAND_HINTS: dict[str, float] = {"watch_hours": 10, "account_age_months": 3}
TARGET_NAMES = ("churned", "churn")
_DATA_FILE_NAME = re.compile(r"[\w.-]+\.(?:csv|tsv|txt|xlsx|xls|json|parquet)\b", re.IGNORECASE)
_EXCEL_WORDS = ("excel", "xlsx", "workbook", "spreadsheet")
_ANAPHORA = re.compile(r"\b(that|those|these|them|it)\b", re.IGNORECASE)


def _code(template: str, **values: Any) -> str:
    """Fill ``__NAME__`` placeholders with Python literals."""
    for name, value in values.items():
        template = template.replace(f"__{name.upper()}__", repr(value))
    return template


def _program(ctx: ScriptContext, template: str, **values: Any) -> Code:
    """An analyst program (built on ``_READERS``): it finds ``ctx.file_names`` in the sandbox."""
    root = str(ctx.container_dir or "/")
    return Code(_code(template, root=root, files=ctx.file_names, state=STATE_FILE, **values))


def _is_binary_target(profile: Mapping[str, Any]) -> str | None:
    for col in profile.get("columns", []):
        if col.lower() in TARGET_NAMES and profile.get("nunique", {}).get(col) == 2:
            return str(col)
    return None


def _mentioned(question: str, columns: Sequence[str]) -> str | None:
    text = question.lower()
    for col in columns:
        if col.lower() in text or col.lower().replace("_", " ") in text:
            return col
    return None


def _first_mentioned(question: str, columns: Sequence[str]) -> str | None:
    """The column asked for: the first one named right after "by"/"per", else the earliest named."""
    text = question.lower()
    for lead in (r"\b(?:by|per|across)\s+", ""):
        best: tuple[int, str] | None = None
        for col in columns:
            for form in {col.lower(), col.lower().replace("_", " ")}:
                match = re.search(rf"{lead}\b{re.escape(form)}\b", text)
                if match and (best is None or match.start() < best[0]):
                    best = (match.start(), col)
        if best is not None:
            return best[1]
    return None


def _churn_plan(profile: Mapping[str, Any], target: str, question: str) -> dict[str, Any]:
    rows = int(profile.get("rows", 0))
    nunique: Mapping[str, int] = profile.get("nunique", {})
    numeric = set(profile.get("numeric", []))
    focus = _mentioned(question, [c for c in profile["columns"] if c != target])
    categorical: list[str] = []
    bands: dict[str, float | None] = {}
    for col in profile["columns"]:
        n = nunique.get(col, 0)
        idlike = n == rows or col.lower().endswith("_id") or col.lower() == "id"
        if col == target or idlike or "date" in col.lower():
            continue
        if col not in numeric and 2 <= n <= 12:
            categorical.append(col)
        elif col in numeric and n > 12:
            bands[col] = BAND_HINTS.get(col)
    if focus is not None and focus not in categorical and focus not in bands:
        if focus in numeric:
            bands[focus] = BAND_HINTS.get(focus)
        else:
            categorical.append(focus)
    chart = "tier" if "tier" in categorical else (focus if focus in categorical else None)
    return {
        "file": profile["file"],
        "target": target,
        "categorical": categorical,
        "bands": bands,
        "chart": chart,
        "focus": focus,
    }


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _other_files(profiles: Sequence[Mapping[str, Any]], used: str) -> list[str]:
    """A closing line about the input files the analysis did not use, if any."""
    others = [
        f"`{p['file']}` ({p['rows']:,} rows × {len(p['columns'])} columns)" for p in profiles if p["file"] != used
    ]
    return ["", "Also in the sandbox: " + ", ".join(others) + "."] if others else []


def _churn_answer(
    ctx: ScriptContext,
    plan: Mapping[str, Any],
    earlier: Sequence[str],
    profiles: Sequence[Mapping[str, Any]] = (),
    run: CodeRun | None = None,
) -> str:
    run = run or ctx.last
    results = run.tagged_json("RESULT")
    if not run.ok or not results:
        return _failure_answer(run)
    result = results[-1]
    findings: list[tuple[float, str]] = []
    for col, rows in result["by_category"].items():
        if len(rows) < 2:
            continue
        top, rest = rows[0], rows[1:]
        others = ", ".join(f"{_pct(r['rate'])} ({r['value']})" for r in rest[:3])
        spread = top["rate"] - rows[-1]["rate"]
        if spread < 0.03:
            text = f"- **{col}**: churn barely varies ({_pct(rows[-1]['rate'])} to {_pct(top['rate'])})."
        else:
            text = f"- **{col}**: {top['value']} churns at **{_pct(top['rate'])}**, vs {others}."
        findings.append((spread + (1 if col == plan.get("focus") else 0), text))
    for col, band in result["bands"].items():
        ratio = f" (**{band['ratio']:.1f}×**)" if band.get("ratio") else ""
        findings.append(
            (
                abs(band["below"] - band["at_or_above"]) + (1 if col == plan.get("focus") else 0),
                f"- **{col}** under {band['cut']:g}: **{_pct(band['below'])}** vs "
                f"{_pct(band['at_or_above'])} at {band['cut']:g} or more{ratio}.",
            )
        )
    findings.sort(key=lambda item: item[0], reverse=True)
    lines = [
        f"## Churn analysis of {result['file']}",
        "",
        f"Overall churn is **{_pct(result['overall'])}** across **{result['rows']:,}** customers.",
        "",
        *[text for _, text in findings[:4]],
    ]
    table_col = result.get("chart_column")
    if table_col in result["by_category"]:
        lines += ["", f"| {table_col} | customers | churn rate |", "|---|---:|---:|"]
        lines += [f"| {r['value']} | {r['n']:,} | {_pct(r['rate'])} |" for r in result["by_category"][table_col]]
    if result.get("chart"):
        lines += ["", f"Chart: `{result['chart']}`."]
    lines += _other_files(profiles, result["file"])
    if earlier:
        lines += ["", "Files from earlier in this conversation are still available: " + ", ".join(earlier) + "."]
    return "\n".join(lines)


def _describe_answer(ctx: ScriptContext, profiles: Sequence[Mapping[str, Any]] = ()) -> str:
    run = ctx.last
    results = run.tagged_json("RESULT")
    if not run.ok or not results:
        return _failure_answer(run)
    result = results[-1]
    lines = [
        f"## Summary of {result['file']}",
        "",
        f"- **{result['rows']:,}** rows and **{result['columns']}** columns.",
        "- There is no binary `churned` column, so here are the numeric columns.",
        "",
        "| column | mean | median | min | max |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {col} | {s['mean']:g} | {s['median']:g} | {s['min']:g} | {s['max']:g} |"
        for col, s in result["stats"].items()
    ]
    if result.get("chart"):
        lines += ["", f"Chart: `{result['chart']}`."]
    lines += _other_files(profiles, result["file"])
    return "\n".join(lines)


def _failure_answer(run: CodeRun) -> str:
    if run.error_code is not None:
        return f"## The analysis could not run\n\nThe code execution tool reported `{run.error_code}`."
    tail = "\n".join((run.stderr or run.stdout).strip().splitlines()[-8:])
    return f"## The analysis failed\n\nMy code exited with status {run.return_code}:\n\n```\n{tail}\n```"


NO_FILES_ANSWER = (
    "## No data found\n\n"
    "I couldn't find any data files in the sandbox, so there is nothing to analyse yet. "
    "Please upload a CSV, TSV, Excel, JSON or Parquet file with your question."
)
NO_TOOL_ANSWER = "I can only analyse data files when the code execution tool is enabled for this conversation."
MISSING_DATA_TITLE = "## I can't find the data file"


# -- Excel / CSV export ----------------------------------------------------------------------


def wants_spreadsheet(ctx: ScriptContext) -> bool:
    """Does the newest question ask for an Excel workbook / spreadsheet?"""
    return question_mentions(ctx, *_EXCEL_WORDS)


def _table(name: str, title: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"name": name, "title": title, "rows": [[r["value"], r["n"], r["rate"]] for r in rows]}


def _churn_export_spec(result: Mapping[str, Any], stem: str) -> dict[str, Any]:
    """Tables of a first-turn churn RESULT: the chart's breakdown first, then the others, then bands."""
    order = sorted(result["by_category"], key=lambda c: c != result.get("chart_column"))
    tables = [_table(c, f"Churn rate by {c}", result["by_category"][c]) for c in order if result["by_category"][c]]
    for col, band in result["bands"].items():
        rows = [
            {"value": f"< {band['cut']:g}", "n": band["n_below"], "rate": band["below"]},
            {"value": f">= {band['cut']:g}", "n": band["n_at_or_above"], "rate": band["at_or_above"]},
        ]
        tables.append(_table(col, f"Churn rate by {col} (cut at {band['cut']:g})", rows))
    facts = [
        ["Overall churn rate", result["overall"], "0.0%"],
        ["Customers", result["rows"], "#,##0"],
        ["Source file", result["file"], None],
    ]
    return {"stem": stem, "title": f"Churn analysis of {result['file']}", "facts": facts, "tables": tables}


def _breakdown_export_spec(result: Mapping[str, Any], stem: str) -> dict[str, Any]:
    facts = [
        ["Overall churn rate", result["overall"], "0.0%"],
        ["Customers", result["customers"], "#,##0"],
    ]
    segment = result.get("segment")
    if segment:
        where = ", ".join(f"{c} = {v}" for c, v in result["filters"].items())
        facts += [["Segment", where, None], ["Segment churn rate", segment["rate"], "0.0%"]]
        facts += [["Segment customers", segment["n"], "#,##0"]]
    facts.append(["Source file", result["file"], None])
    title = f"Churn rate by {result['by']}" + (f" ({', '.join(result['filters'].values())})" if segment else "")
    return {"stem": stem, "title": title, "facts": facts, "tables": [_table(result["by"], title, result["rows"])]}


def _export(ctx: ScriptContext, spec: dict[str, Any]) -> Iterator[Action]:
    """Write the workbook (xlsx skill loaded) or a CSV (otherwise)."""
    xlsx = ctx.has_skill("xlsx")
    full = {**spec, "format": "xlsx" if xlsx else "csv", "filename": spec["stem"] + (".xlsx" if xlsx else ".csv")}
    yield Code(_code(_EXPORT_CODE, spec=full))


def _export_note(run: CodeRun) -> str:
    if not run.ok:
        return "\n\nI tried to save the tables for Excel, but that step failed:\n\n" + _failure_answer(run)
    workbook = next(iter(run.tagged_json("WORKBOOK")), None)
    if workbook is not None:
        more = [s for s in workbook["sheets"] if s != "Summary"]
        extra = f", plus {len(more)} more sheet{'s' if len(more) != 1 else ''} ({', '.join(more)})" if more else ""
        return (
            f"\n\nWorkbook: `{workbook['file']}` — a formatted **Summary** sheet with the key figures and a "
            f"native Excel bar chart{extra}."
        )
    table = next(iter(run.tagged_json("CSV")), {"file": "the CSV file"})
    return (
        "\n\nYou asked for an Excel workbook, but the xlsx skill isn't enabled for this conversation, so I saved "
        f"the tables as CSV instead: `{table['file']}` (Excel opens it directly)."
    )


# -- follow-ups --------------------------------------------------------------------------------


def _value_mentioned(question: str, value: str) -> bool:
    """Whole-word match; short values (``US``, ``tv``) must match case exactly, numbers never do."""
    if not value or re.fullmatch(r"[\d.,\s-]+", value):
        return False
    flags = re.IGNORECASE if len(value) >= 4 else 0
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", question, flags) is not None


def _filters_in(text: str, values: Mapping[str, Sequence[str]], exclude: str | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for col, options in values.items():
        if col == exclude or col in found:
            continue
        for value in options:
            if _value_mentioned(text, value):
                found[col] = value
                break
    return found


def _joins(main: Mapping[str, Any], profiles: Sequence[Mapping[str, Any]], target: str) -> list[dict[str, Any]]:
    """Other input files that extend the main one: exactly one shared column, unique in them."""
    joins = []
    for other in profiles:
        if other["file"] == main["file"]:
            continue
        shared = [c for c in other["columns"] if c in main["columns"] and c != target]
        if len(shared) == 1 and other["nunique"].get(shared[0]) == other["rows"]:
            columns = [c for c in other["columns"] if c != shared[0]]
            joins.append({"file": other["file"], "on": shared[0], "columns": columns, "profile": other})
    return joins


def _main_data(
    ctx: ScriptContext, state: Mapping[str, Any] | None, profiles: Sequence[Mapping[str, Any]]
) -> tuple[Mapping[str, Any], str] | None:
    """The churn file this conversation is about and its target column (None: no churn data)."""
    by_name = {p["file"]: p for p in profiles}
    if state and state.get("kind") == "churn" and state.get("plan", {}).get("file") in by_name:
        return by_name[state["plan"]["file"]], str(state["plan"]["target"])
    named = [m.group(0) for turn in ctx.history for m in _DATA_FILE_NAME.finditer(turn.text)]
    ordered = sorted(profiles, key=lambda p: (p["file"] not in named, profiles.index(p)))
    return next(((p, t) for p in ordered if (t := _is_binary_target(p))), None)


def _breakdown_ask(
    ctx: ScriptContext, plan: Mapping[str, Any], main: Mapping[str, Any], joins: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """What the follow-up asks for: a breakdown ``by`` a column, within ``filters`` (None: neither)."""
    rows = int(main.get("rows", 0))
    nunique: dict[str, int] = dict(main.get("nunique", {}))
    values: dict[str, list[str]] = dict(main.get("values", {}))
    candidates = [
        c
        for c in main["columns"]
        if c != plan["target"]
        and nunique.get(c, 0) not in (0, 1, rows)
        and not c.lower().endswith("_id")
        and "date" not in c.lower()
    ]
    for join in joins:
        for col in join["columns"]:
            candidates.append(col)
            nunique[col] = join["profile"]["nunique"].get(col, 0)
            values.setdefault(col, join["profile"].get("values", {}).get(col, []))
    values = {c: v for c, v in values.items() if c in candidates}
    by = _first_mentioned(ctx.question, candidates)
    filters = _filters_in(ctx.question, values, by)
    if not filters and _ANAPHORA.search(ctx.question) and ctx.earlier_questions:
        filters = _filters_in(ctx.earlier_questions[-1], values, by)  # "split *that* by country"
    if by is None and not filters:
        return None
    if by is None:  # "what about Premium users?": the breakdown asked for last, or the most telling one
        for earlier in reversed(ctx.earlier_questions):
            by = _first_mentioned(earlier, [c for c in candidates if c not in filters])
            if by is not None:
                break
    # "auto" compares the plan's categorical columns (and non-numeric joined ones), not small numeric
    # groups whose extreme rates are noise.
    joined = [c for j in joins for c in j["columns"] if c not in j["profile"].get("numeric", [])]
    categorical = [c for c in [*plan.get("categorical", []), *joined] if c not in filters and c in values]
    if by is None:
        return {"by": "auto", "kind": "category", "cut": None, "filters": filters, "candidates": categorical}
    kind = "category" if nunique.get(by, 0) <= 12 else "band"
    cut = BAND_HINTS.get(by) if kind == "band" else None
    return {"by": by, "kind": kind, "cut": cut, "filters": filters, "candidates": categorical}


def _breakdown_answer(run: CodeRun, earlier: Sequence[str]) -> str:
    results = run.tagged_json("RESULT")
    if not run.ok or not results:
        return _failure_answer(run)
    result = results[-1]
    rows, by, filters = result["rows"], result["by"], result["filters"]
    where = ", ".join(f"{col} = {value}" for col, value in filters.items())
    who = " ".join(filters.values())
    title = f"## Churn by {by}" + (f" for {who} customers" if filters else "") if by else "## Churn"
    lines = [title, ""]
    segment = result.get("segment")
    if segment is not None:
        if not segment["n"]:
            none = f"No customers match {where} in `{result['file']}`, so there is nothing to split."
            return "\n".join([*lines, none])
        lines.append(
            f"**{who}** customers ({where}) churn at **{_pct(segment['rate'])}** ({segment['n']:,} customers), "
            f"vs **{_pct(result['overall'])}** overall."
        )
    else:
        lines.append(f"Overall churn is **{_pct(result['overall'])}** across **{result['customers']:,}** customers.")
    if len(rows) < 2:
        lines += ["", f"There is only one {by or 'group'} here, so there is nothing to compare."]
    else:
        top, bottom = rows[0], rows[-1]
        spread = (top["rate"] - bottom["rate"]) * 100
        if spread < 3:
            lines += [
                "",
                f"Churn barely varies by {by}: from **{_pct(bottom['rate'])}** ({bottom['value']}) to "
                f"**{_pct(top['rate'])}** ({top['value']}), a {spread:.1f}-point spread, so {by} is not a driver here.",
            ]
        else:
            lines += [
                "",
                f"By {by}, **{top['value']}** churns most at **{_pct(top['rate'])}** and **{bottom['value']}** least "
                f"at **{_pct(bottom['rate'])}** — a {spread:.1f}-point spread.",
            ]
        lines += ["", f"| {by} | customers | churn rate |", "|---|---:|---:|"]
        lines += [f"| {r['value']} | {r['n']:,} | {_pct(r['rate'])} |" for r in rows]
    if result.get("joined"):
        sources = ", ".join(f"`{f}`" for f in result["joined"])
        lines += ["", f"`{by}` comes from {sources}, joined to `{result['file']}`."]
    if result.get("chart"):
        lines += ["", f"Chart: `{result['chart']}`."]
    shown = [name for name in earlier if name != result.get("chart")]
    if shown:
        lines += ["", "Files from earlier in this conversation are still available: " + ", ".join(shown) + "."]
    return "\n".join(lines)


def _missing_data_answer(
    ctx: ScriptContext, state: Mapping[str, Any] | None, errors: Sequence[Mapping[str, Any]]
) -> str:
    if errors:
        return "## I couldn't read the data\n\n" + "\n".join(f"- `{e['file']}`: {e['error']}" for e in errors)
    names = [str(state["plan"]["file"])] if state and state.get("plan", {}).get("file") else []
    for turn in ctx.history:
        names += [m.group(0) for m in _DATA_FILE_NAME.finditer(turn.text) if m.group(0) not in names]
    attached = any(block.get("type") == "container_upload" for turn in ctx.history for block in turn.blocks)
    if not names and not attached:  # there never was a data file in this conversation
        return NO_FILES_ANSWER
    which = f" (`{names[0]}`)" if names else ""
    return (
        f"{MISSING_DATA_TITLE}\n\n"
        f"I can't find the data file from earlier in this conversation{which} in the sandbox, so I can't answer "
        "this follow-up: the sandbox has no input files. Please attach the file again."
    )


def _follow_up(ctx: ScriptContext) -> Iterator[Action]:
    """A later turn: reuse the state an earlier turn left (or rebuild it) and answer the follow-up."""
    yield _program(ctx, FOLLOW_UP_PROBE_CODE)
    probe = ctx.last
    if not probe.ok:
        yield Text(_failure_answer(probe))
        return
    earlier: list[str] = next(iter(probe.tagged_json("OUTPUTS")), [])
    saved = next(iter(probe.tagged_json("STATE_JSON")), None)
    state = saved if any(line.startswith("reused ") for line in probe.tagged_lines("STATE")) else None
    profiles = [p for p in probe.tagged_json("PROFILE") if "error" not in p]
    if not profiles:
        yield Text(_missing_data_answer(ctx, saved, [p for p in probe.tagged_json("PROFILE") if "error" in p]))
        return
    main = _main_data(ctx, state, profiles)
    if main is None:
        yield _program(ctx, _DESCRIBE_CODE, plan={"file": profiles[0]["file"]})
        yield Text(_describe_answer(ctx, profiles))
        return
    profile, target = main
    first_question = (ctx.earlier_questions or [ctx.question])[0]
    plan = dict(state["plan"]) if state else _churn_plan(profile, target, first_question)
    joins = _joins(profile, profiles, target)
    ask = _breakdown_ask(ctx, plan, profile, joins)
    if ask is None:  # not a breakdown: the full analysis again, focused on the question
        yield _program(ctx, _CHURN_CODE, plan=plan)
        run = ctx.last
        answer = _churn_answer(ctx, plan, earlier, profiles, run=run)
        if wants_spreadsheet(ctx) and run.ok and run.tagged_json("RESULT"):
            yield from _export(ctx, _churn_export_spec(run.tagged_json("RESULT")[-1], "churn_summary"))
            answer += _export_note(ctx.last)
        yield Text(answer)
        return
    ask["joins"] = [{k: v for k, v in j.items() if k != "profile"} for j in joins]
    yield _program(ctx, _BREAKDOWN_CODE, plan=plan, ask=ask)
    run = ctx.last
    answer = _breakdown_answer(run, earlier)
    result = next(reversed(run.tagged_json("RESULT")), None) if run.ok else None
    if wants_spreadsheet(ctx) and result and result["rows"]:
        stem = Path(result.get("chart") or f"churn_by_{result['by']}").stem
        yield from _export(ctx, _breakdown_export_spec(result, stem))
        answer += _export_note(ctx.last)
    yield Text(answer)


def analyst(ctx: ScriptContext) -> Iterator[Action]:
    """The default script: profile the inputs, analyse, chart, answer in Markdown.

    On a follow-up (``ctx.is_follow_up``) it answers from the state it left in the container
    (see :data:`STATE_FILE`); when the question asks for Excel it adds a workbook (xlsx skill
    loaded) or a CSV (not loaded).
    """
    if not ctx.has_code_tool:
        yield Text(NO_TOOL_ANSWER)
        return
    if ctx.is_follow_up:
        yield from _follow_up(ctx)
        return
    yield _program(ctx, PROFILE_CODE)
    profile_run = ctx.last
    if not profile_run.ok:
        yield Text(_failure_answer(profile_run))
        return
    earlier: list[str] = next(iter(profile_run.tagged_json("OUTPUTS")), [])
    profiles = [p for p in profile_run.tagged_json("PROFILE") if "error" not in p]
    if not profiles:
        errors = [p for p in profile_run.tagged_json("PROFILE") if "error" in p]
        if errors:
            yield Text("## I couldn't read the data\n\n" + "\n".join(f"- `{e['file']}`: {e['error']}" for e in errors))
        else:
            yield Text(NO_FILES_ANSWER)
        return
    churn = next(((p, t) for p in profiles if (t := _is_binary_target(p))), None)
    if churn is not None:
        plan = _churn_plan(churn[0], churn[1], ctx.question)
        yield _program(ctx, _CHURN_CODE, plan=plan)
        run = ctx.last
        answer = _churn_answer(ctx, plan, earlier, profiles, run=run)
        if wants_spreadsheet(ctx) and run.ok and run.tagged_json("RESULT"):
            yield from _export(ctx, _churn_export_spec(run.tagged_json("RESULT")[-1], "churn_summary"))
            answer += _export_note(ctx.last)
        yield Text(answer)
    else:
        yield _program(ctx, _DESCRIBE_CODE, plan={"file": profiles[0]["file"]})
        yield Text(_describe_answer(ctx, profiles))


def question_mentions(ctx: ScriptContext, *words: str) -> bool:
    """Case-insensitive: does the newest question mention any of ``words``? (for custom scripts)"""
    return any(re.search(re.escape(w), ctx.question, re.IGNORECASE) for w in words)


# --------------------------------------------------------------------------------------------
# Sample outputs of many types, for custom scripts
# --------------------------------------------------------------------------------------------

_OUTPUT_FILES_CODE = r"""
import json, pathlib
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

OUT = pathlib.Path("outputs")
NAMES = __NAMES__
TIERS, RATES = ["Free", "Basic", "Premium"], [0.453, 0.192, 0.088]


def figure(title):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(TIERS, [r * 100 for r in RATES], color="#4a7ebb")
    ax.set_ylabel("churn rate (%)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


for name in NAMES:
    path = OUT / name
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    if ext in (".png", ".jpg", ".jpeg", ".svg", ".webp", ".tif", ".tiff", ".eps", ".ps"):
        fig = figure(f"Churn by tier ({ext[1:]})")
        fig.savefig(path, dpi=60)
        plt.close(fig)
    elif ext == ".pdf":
        from matplotlib.backends.backend_pdf import PdfPages

        with PdfPages(path, metadata={"Title": "Churn report"}) as pdf:
            for page in ("Churn by tier", "Churn by tier, again"):
                fig = figure(page)
                pdf.savefig(fig)
                plt.close(fig)
    elif ext in (".csv", ".tsv"):
        sep = "," if ext == ".csv" else "\t"
        rows = "".join(f"{t}{sep}{r}\n" for t, r in zip(TIERS, RATES))
        path.write_text(sep.join(["tier", "churn_rate"]) + "\n" + rows)
    elif ext == ".xlsx":
        from openpyxl import Workbook
        from openpyxl.chart import BarChart, Reference

        wb = Workbook()
        ws = wb.active
        ws.title = "Churn"
        ws.append(["tier", "churn rate"])
        for tier, rate in zip(TIERS, RATES):
            ws.append([tier, rate])
            ws.cell(row=ws.max_row, column=2).number_format = "0.0%"
        chart = BarChart()
        chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=4), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=4))
        ws.add_chart(chart, "D2")
        wb.save(path)
    elif ext == ".json":
        path.write_text(json.dumps(dict(zip(TIERS, RATES)), indent=1))
    elif ext == ".md":
        rows = "".join(f"| {t} | {r:.1%} |\n" for t, r in zip(TIERS, RATES))
        path.write_text("# Churn\n\n| tier | rate |\n|---|---:|\n" + rows)
    elif ext in (".html", ".htm"):
        rows = "".join(f"<tr><td>{t}<td>{r:.1%}" for t, r in zip(TIERS, RATES))
        path.write_text("<!doctype html><title>Churn</title><table>" + rows + "</table>")
    elif ext == ".txt":
        path.write_text("".join(f"{t}: {r:.1%}\n" for t, r in zip(TIERS, RATES)))
    else:
        path.write_bytes(bytes(range(256)))
    print(f"WROTE {name} {path.stat().st_size}")
"""


def output_files_code(*names: str) -> str:
    """Python source that writes a small sample file of each named type into ``outputs/``.

    By extension: charts with matplotlib (``.png``, ``.jpg``, ``.svg``, ``.webp``, ``.tif`` ...),
    a two-page PDF with ``PdfPages``, ``.csv``/``.tsv`` tables, an ``.xlsx`` workbook with a
    native chart (openpyxl), ``.json``, ``.md``, ``.html``, ``.txt``; anything else gets
    arbitrary bytes.  Names may include subdirectories.  Use as ``Code(output_files_code(...))``.
    """
    return _code(_OUTPUT_FILES_CODE, names=list(names))
