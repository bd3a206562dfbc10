"""The scripted "model" behind the fake Anthropic API.

A script is plain Python, not an LLM: a callable that receives a :class:`ScriptContext` (the
question, the files in the container, earlier turns, the tool version, and the results of the
code it has run so far in this turn) and yields :data:`Action` s.  Scripts are usually generator
functions, so they can look at what the code printed before deciding what to do next::

    def chart_script(ctx: ScriptContext) -> Iterator[Action]:
        yield Code("import pandas as pd; print(len(pd.read_csv('inputs/streaming.csv')))")
        yield Text(f"The file has {ctx.last.stdout.strip()} rows.")

    api.script = chart_script
    api.script = scripted(Code("print('<!channel>')"), Text(lambda ctx: ctx.last.stdout))

The fake API (``tests/fakes/anthropic.py``) turns every action into the content blocks the real
API returns for the request's code-execution tool version, really runs the code in the
sandbox, and handles ``pause_turn`` continuations statelessly by replaying the script against
the content the client echoes back.  :func:`analyst` is the default script: a competent data
analyst that profiles every input file, analyses churn (or describes the numbers), saves a
chart and answers in Markdown quoting the figures its code printed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

__all__ = [
    "Action",
    "Code",
    "CodeRun",
    "GeneratedFile",
    "MaxTokens",
    "Pause",
    "Refuse",
    "Script",
    "ScriptContext",
    "Text",
    "ToolError",
    "Turn",
    "analyst",
    "question_mentions",
    "scripted",
]


# --------------------------------------------------------------------------------------------
# Actions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    """The model writes Python and runs it with the code execution tool.

    ``source`` may be a callable, evaluated with the context when the action runs.  With the
    bash tool versions the code is first created as ``filename`` (default ``analysis_<n>.py``)
    with the text editor tool, then run as ``python3 <filename>``.
    """

    source: str | Callable[[ScriptContext], str]
    filename: str | None = None


@dataclass(frozen=True)
class Text:
    """A text block; a callable is given the context, e.g. to quote what the code printed."""

    text: str | Callable[[ScriptContext], str]


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
class ToolError:
    """A code-execution tool-result error block instead of a result, e.g. ``execution_time_exceeded``,
    ``output_file_too_large``, ``unavailable``, ``too_many_requests``, ``invalid_tool_input``."""

    error_code: str
    source: str = "print('working...')"


Action: TypeAlias = Code | Text | Pause | Refuse | MaxTokens | ToolError
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
    #: Container-relative path, e.g. ``outputs/churn_by_tier.png`` ("" when replayed).
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
    #: The container's directory on the host (None without a code-execution tool).
    container_dir: Path | None = None
    #: Files in the container's ``inputs/`` (relative to it) when the response started.
    input_files: list[str] = field(default_factory=list)
    #: Files in the container's ``outputs/`` (relative to it) when the response started.
    output_files: list[str] = field(default_factory=list)
    #: File ids of the ``container_upload`` blocks in the newest user turn.
    uploaded_file_ids: list[str] = field(default_factory=list)
    #: Results of the code run so far in this turn (including replayed ones), in order.
    runs: list[CodeRun] = field(default_factory=list)
    #: Text blocks produced so far in this turn.
    texts: list[str] = field(default_factory=list)
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
    def generated_files(self) -> list[GeneratedFile]:
        """Every file generated so far in this turn."""
        return [f for run in self.runs for f in run.files]


# --------------------------------------------------------------------------------------------
# The default script: a competent analyst
# --------------------------------------------------------------------------------------------

_READERS = r"""
import json, os, pathlib
import pandas as pd

INPUT_DIR = pathlib.Path(os.environ.get("INPUT_DIR", "inputs"))
OUTPUT_DIR = pathlib.Path(os.environ.get("OUTPUT_DIR", "outputs"))


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

PROFILE_CODE = (
    _READERS
    + r"""

files = sorted(p for p in INPUT_DIR.rglob("*") if p.is_file()) if INPUT_DIR.is_dir() else []
earlier = sorted(p.name for p in OUTPUT_DIR.rglob("*") if p.is_file()) if OUTPUT_DIR.is_dir() else []
print("OUTPUTS " + json.dumps(earlier))
if not files:
    print("NO_INPUT_FILES in " + str(INPUT_DIR))
for path in files:
    name = str(path.relative_to(INPUT_DIR))
    try:
        df = read_table(path)
    except Exception as exc:
        print("PROFILE " + json.dumps({"file": name, "error": f"{type(exc).__name__}: {exc}"}))
        continue
    profile = {
        "file": name,
        "rows": int(df.shape[0]),
        "columns": [str(c) for c in df.columns],
        "dtypes": {str(c): str(t) for c, t in df.dtypes.items()},
        "numeric": [str(c) for c in df.select_dtypes("number").columns],
        "nunique": {str(c): int(n) for c, n in df.nunique().items()},
    }
    print("PROFILE " + json.dumps(profile))
    print(f"== {name}: {df.shape[0]} rows x {df.shape[1]} columns")
    print(df.head().to_string())
"""
)

_CHURN_CODE = (
    _READERS
    + r"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

PLAN = __PLAN__
df = read_table(INPUT_DIR / PLAN["file"])
target = PLAN["target"]
if df[target].dtype == object or str(df[target].dtype) in ("str", "string"):
    df[target] = df[target].astype(str).str.lower().isin(["1", "yes", "true", "y"]).astype(int)
df[target] = df[target].astype(float)

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
print("RESULT " + json.dumps(result))
"""
)

_DESCRIBE_CODE = (
    _READERS
    + r"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

PLAN = __PLAN__
df = read_table(INPUT_DIR / PLAN["file"])
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
print("RESULT " + json.dumps(result))
"""
)

#: Cut points an analyst would choose for well-known columns (others: the median).
BAND_HINTS: dict[str, float] = {"watch_hours": 10, "account_age_months": 3}
TARGET_NAMES = ("churned", "churn")


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
    ctx: ScriptContext, plan: Mapping[str, Any], earlier: Sequence[str], profiles: Sequence[Mapping[str, Any]] = ()
) -> str:
    run = ctx.last
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


def analyst(ctx: ScriptContext) -> Iterator[Action]:
    """The default script: profile the inputs, analyse, chart, answer in Markdown."""
    if not ctx.has_code_tool:
        yield Text(NO_TOOL_ANSWER)
        return
    yield Code(PROFILE_CODE)
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
        yield Code(_CHURN_CODE.replace("__PLAN__", repr(plan)))
        yield Text(_churn_answer(ctx, plan, earlier, profiles))
    else:
        yield Code(_DESCRIBE_CODE.replace("__PLAN__", repr({"file": profiles[0]["file"]})))
        yield Text(_describe_answer(ctx, profiles))


def question_mentions(ctx: ScriptContext, *words: str) -> bool:
    """Case-insensitive: does the newest question mention any of ``words``? (for custom scripts)"""
    return any(re.search(re.escape(w), ctx.question, re.IGNORECASE) for w in words)
