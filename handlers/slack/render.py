"""Claude's Markdown → Slack messages that render, within Slack's limits. Pure functions.

Answers go out as ``markdown`` blocks (headings, bullets, bold, links, code render as
written). Slack's markdown block has no table syntax, so GFM tables become aligned
monospace blocks. Long answers are split on paragraph boundaries into several messages,
never inside a code block, each within the markdown block's 12,000-character budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.sanitize import neutralize

MARKDOWN_BLOCK_LIMIT = 12_000
MESSAGE_BUDGET = 11_000  # room for the continuation marker and fence repairs
FALLBACK_TEXT_LIMIT = 3_000

_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _cells(line: str) -> list[str]:
    body = line.strip()
    body = body.removeprefix("|").removesuffix("|")
    return [cell.strip().replace("**", "").replace("`", "") for cell in body.split("|")]


def _render_table(rows: list[list[str]], numeric: list[bool]) -> list[str]:
    width = max(len(row) for row in rows)
    rows = [row + [""] * (width - len(row)) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(width)]

    def fmt(row: list[str]) -> str:
        cells = [
            (cell.rjust(widths[i]) if i < len(numeric) and numeric[i] else cell.ljust(widths[i]))
            for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    lines = ["```", fmt(rows[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(row) for row in rows[1:]]
    lines.append("```")
    return lines


def _is_number(cell: str) -> bool:
    return re.fullmatch(r"[-+]?[$€£]?\d[\d,]*(\.\d+)?\s*%?", cell.strip()) is not None


def tables_to_monospace(markdown: str) -> str:
    """Replace every GFM table (outside code blocks) with an aligned monospace block."""
    lines = markdown.splitlines()
    out: list[str] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            in_fence = not in_fence
        if not in_fence and "|" in line and i + 1 < len(lines) and _TABLE_SEPARATOR.match(lines[i + 1]):
            header = _cells(line)
            body: list[list[str]] = []
            j = i + 2
            while j < len(lines) and "|" in lines[j] and lines[j].strip():
                body.append(_cells(lines[j]))
                j += 1
            columns = max([len(header), *(len(r) for r in body)])
            numeric = [
                bool(body) and all(_is_number(r[c]) for r in body if c < len(r) and r[c]) for c in range(columns)
            ]
            out.extend(_render_table([header, *body], numeric))
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def split_markdown(markdown: str, budget: int = MESSAGE_BUDGET) -> list[str]:
    """Split into pieces of at most ``budget`` characters at paragraph boundaries.

    A code block cut across pieces is closed at the end of one and reopened at the start
    of the next, so each piece renders on its own.
    """
    if len(markdown) <= budget:
        return [markdown]
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    fence: str | None = None  # the opening fence line while inside a code block

    def flush() -> None:
        nonlocal current, size
        if not current:
            return
        text = "\n".join(current)
        if fence is not None:
            text += "\n```"
        pieces.append(text.strip("\n"))
        current = [fence] if fence is not None else []
        size = len(fence) + 1 if fence is not None else 0

    for line in markdown.splitlines():
        while len(line) > budget - 8:  # a single enormous line: hard-wrap it
            head, line = line[: budget - 8], line[budget - 8 :]
            if size + len(head) + 1 > budget:
                flush()
            current.append(head)
            size += len(head) + 1
        paragraph_break = not line.strip() and fence is None
        if size + len(line) + 1 > budget or (paragraph_break and size > budget * 0.9):
            flush()
        current.append(line)
        size += len(line) + 1
        if _FENCE.match(line):
            fence = None if fence is not None else line.strip()
    if fence is not None:
        fence = None
    flush()
    return [piece for piece in pieces if piece.strip()]


def plain_text(markdown: str, limit: int = FALLBACK_TEXT_LIMIT) -> str:
    """A plain rendering for notifications and clients that don't show blocks."""
    text = re.sub(r"^\s*#{1,6}\s*", "", markdown, flags=re.MULTILINE)
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)
    text = text.replace("```", "")
    text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1 (\2)", text)
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class SlackMessage:
    """Arguments for one ``chat.postMessage``."""

    text: str
    blocks: list[dict[str, Any]]


def answer_messages(answer: str, notes: tuple[str, ...] = ()) -> list[SlackMessage]:
    """The interpretation as one or more Slack messages, neutralised and within limits."""
    body = neutralize(answer.strip())
    if notes:
        body += "\n\n" + "\n".join(f"_{neutralize(note)}_" for note in notes)
    body = tables_to_monospace(body)
    pieces = split_markdown(body)
    messages = []
    for index, piece in enumerate(pieces):
        if len(pieces) > 1:
            piece += f"\n\n_({index + 1}/{len(pieces)})_"
        messages.append(SlackMessage(text=plain_text(piece), blocks=[{"type": "markdown", "text": piece}]))
    return messages


def title_from_filename(filename: str) -> str:
    """``churn_by_tier.png`` → ``Churn by tier``."""
    stem = filename.rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    words = re.sub(r"[_\-]+", " ", stem).strip()
    return neutralize(words[:1].upper() + words[1:]) if words else "Output"


def code_listing(steps: list[tuple[int, str, str]]) -> str:
    """All the code an analysis ran, as one Python file with a header per step."""
    parts = []
    for step, language, code in steps:
        if language == "bash":
            commands = "\n".join(f"# $ {line}" for line in code.splitlines())
            parts.append(f"# --- step {step} (shell) ---\n{commands}")
        else:
            parts.append(f"# --- step {step} ---\n{code.rstrip()}")
    return neutralize("\n\n".join(parts)) + "\n"
