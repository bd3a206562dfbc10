"""Block Kit, as far as the fake Slack needs it: parse, validate like Slack, render to text.

Validation covers the limits a bot is likely to hit (documented Block Kit limits):
at most 50 blocks, a ``section`` text of at most 3,000 characters and at most 10 fields
of 2,000, a ``header`` of at most 150, ``markdown`` blocks totalling at most 12,000
characters per payload, ``block_id`` of at most 255 and unique, and known block types
only. Errors carry Slack's ``response_metadata.messages`` style:
``[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

JSON = dict[str, Any]

MAX_BLOCKS = 50
SECTION_TEXT_LIMIT = 3000
SECTION_FIELD_LIMIT = 2000
SECTION_MAX_FIELDS = 10
HEADER_TEXT_LIMIT = 150
MARKDOWN_TOTAL_LIMIT = 12_000
BLOCK_ID_LIMIT = 255
CONTEXT_MAX_ELEMENTS = 10
ACTIONS_MAX_ELEMENTS = 25

KNOWN_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)
TEXT_OBJECT_TYPES = frozenset({"plain_text", "mrkdwn"})


class BlocksRejected(Exception):
    """Slack would refuse these blocks; ``error`` is the API error code."""

    def __init__(self, error: str, messages: list[str]) -> None:
        super().__init__(f"{error}: {'; '.join(messages)}")
        self.error = error
        self.messages = messages


def parse_blocks(raw: Any, *, name: str = "blocks") -> list[JSON] | None:
    """The ``blocks`` argument as sent (a JSON string in forms, a list in JSON bodies).

    Returns None when absent; raises ``invalid_blocks_format`` when it is not a JSON array.
    """
    if raw is None or raw == "":
        return None
    value = raw
    if isinstance(raw, str | bytes):
        try:
            value = json.loads(raw)
        except ValueError:
            raise BlocksRejected("invalid_blocks_format", [f"[ERROR] invalid JSON [json-pointer:/{name}]"]) from None
    if not isinstance(value, list):
        raise BlocksRejected("invalid_blocks_format", [f"[ERROR] must be an array [json-pointer:/{name}]"])
    return value


def validate_blocks(
    blocks: list[Any], *, name: str = "blocks", max_blocks: int = MAX_BLOCKS, too_many_error: str = "invalid_blocks"
) -> None:
    """Raise ``BlocksRejected`` if Slack would refuse ``blocks``."""
    if len(blocks) > max_blocks:
        raise BlocksRejected(
            too_many_error, [f"[ERROR] no more than {max_blocks} items allowed [json-pointer:/{name}]"]
        )
    problems: list[str] = []
    seen_ids: set[str] = set()
    markdown_total = 0
    for index, block in enumerate(blocks):
        pointer = f"/{name}/{index}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            problems.append(f"[ERROR] must be an object with a type [json-pointer:{pointer}]")
            continue
        problems.extend(_block_id_problems(block, pointer, seen_ids))
        problems.extend(_block_problems(block, pointer))
        if block["type"] == "markdown" and isinstance(block.get("text"), str):
            markdown_total += len(block["text"])
    if markdown_total > MARKDOWN_TOTAL_LIMIT:
        problems.append(
            f"[ERROR] markdown blocks must total no more than {MARKDOWN_TOTAL_LIMIT} characters "
            f"(got {markdown_total}) [json-pointer:/{name}]"
        )
    if problems:
        raise BlocksRejected("invalid_blocks", problems)


def _block_id_problems(block: JSON, pointer: str, seen: set[str]) -> list[str]:
    block_id = block.get("block_id")
    if block_id is None:
        return []
    if not isinstance(block_id, str) or len(block_id) > BLOCK_ID_LIMIT:
        return [f"[ERROR] must be a string of at most {BLOCK_ID_LIMIT} characters [json-pointer:{pointer}/block_id]"]
    if block_id in seen:
        return [f"[ERROR] duplicate block_id {block_id!r} [json-pointer:{pointer}/block_id]"]
    seen.add(block_id)
    return []


def _block_problems(block: JSON, pointer: str) -> list[str]:
    kind = block["type"]
    if kind not in KNOWN_BLOCK_TYPES:
        return [f"[ERROR] unknown block type {kind!r} [json-pointer:{pointer}/type]"]
    if kind == "section":
        return _section_problems(block, pointer)
    if kind == "header":
        return _text_object_problems(block.get("text"), f"{pointer}/text", HEADER_TEXT_LIMIT, plain_only=True)
    if kind == "markdown":
        if not isinstance(block.get("text"), str) or not block["text"]:
            return [f"[ERROR] missing required field: text [json-pointer:{pointer}/text]"]
        return []
    if kind == "context":
        return _elements_problems(block, pointer, CONTEXT_MAX_ELEMENTS)
    if kind == "actions":
        return _elements_problems(block, pointer, ACTIONS_MAX_ELEMENTS)
    if kind == "rich_text" and not isinstance(block.get("elements"), list):
        return [f"[ERROR] missing required field: elements [json-pointer:{pointer}/elements]"]
    if kind == "image" and not (block.get("image_url") or block.get("slack_file")):
        return [f"[ERROR] missing required field: image_url [json-pointer:{pointer}]"]
    return []


def _section_problems(block: JSON, pointer: str) -> list[str]:
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        return [f"[ERROR] must provide either text or fields [json-pointer:{pointer}]"]
    problems: list[str] = []
    if text is not None:
        problems.extend(_text_object_problems(text, f"{pointer}/text", SECTION_TEXT_LIMIT))
    if fields is not None:
        if not isinstance(fields, list) or len(fields) > SECTION_MAX_FIELDS:
            return [
                *problems,
                f"[ERROR] no more than {SECTION_MAX_FIELDS} items allowed [json-pointer:{pointer}/fields]",
            ]
        for index, item in enumerate(fields):
            problems.extend(_text_object_problems(item, f"{pointer}/fields/{index}", SECTION_FIELD_LIMIT))
    return problems


def _text_object_problems(obj: Any, pointer: str, limit: int, *, plain_only: bool = False) -> list[str]:
    allowed = {"plain_text"} if plain_only else TEXT_OBJECT_TYPES
    if not isinstance(obj, dict) or obj.get("type") not in allowed:
        return [f"[ERROR] must be a text object of type {' or '.join(sorted(allowed))} [json-pointer:{pointer}]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"[ERROR] must be more than 0 characters [json-pointer:{pointer}/text]"]
    if len(text) > limit:
        return [f"[ERROR] must be less than {limit + 1} characters [json-pointer:{pointer}/text]"]
    return []


def _elements_problems(block: JSON, pointer: str, limit: int) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        return [f"[ERROR] missing required field: elements [json-pointer:{pointer}/elements]"]
    if len(elements) > limit:
        return [f"[ERROR] no more than {limit} items allowed [json-pointer:{pointer}/elements]"]
    return []


# --------------------------------------------------------------------------- rendering


def render_blocks(blocks: Iterable[Any]) -> str:
    """The text a person reads in ``blocks``, one block per line (dividers as "---")."""
    lines = [render_block(block) for block in blocks if isinstance(block, dict)]
    return "\n".join(line for line in lines if line)


def render_block(block: JSON) -> str:
    kind = block.get("type")
    if kind in ("section",):
        parts = [render_text(block.get("text"))] + [render_text(field) for field in block.get("fields") or []]
        return "\n".join(part for part in parts if part)
    if kind == "header":
        return render_text(block.get("text"))
    if kind == "markdown":
        return str(block.get("text") or "")
    if kind in ("context", "actions", "context_actions"):
        return " ".join(part for part in (render_element(e) for e in block.get("elements") or []) if part)
    if kind == "rich_text":
        return "".join(render_rich_text(element) for element in block.get("elements") or [])
    if kind == "divider":
        return "---"
    if kind == "image":
        return f"[image: {block.get('alt_text', '')}]"
    if kind == "table":
        rows = block.get("rows") or []
        return "\n".join(" | ".join(render_cell(cell) for cell in row) for row in rows if isinstance(row, list))
    return ""


def render_text(obj: Any) -> str:
    """A text object (``plain_text``/``mrkdwn``) or a bare string."""
    if isinstance(obj, dict):
        return str(obj.get("text") or "")
    return obj if isinstance(obj, str) else ""


def render_element(element: Any) -> str:
    if not isinstance(element, dict):
        return ""
    if element.get("type") in TEXT_OBJECT_TYPES:
        return render_text(element)
    if element.get("type") == "image":
        return f"[image: {element.get('alt_text', '')}]"
    if "text" in element:  # buttons and other interactive elements
        return f"[{render_text(element['text'])}]"
    return ""


def render_cell(cell: Any) -> str:
    if isinstance(cell, dict) and cell.get("type") == "raw_text":
        return str(cell.get("text") or "")
    if isinstance(cell, dict) and cell.get("type") == "rich_text":
        return render_rich_text(cell)
    return render_text(cell)


def render_rich_text(element: Any) -> str:
    """Flatten a rich text element (section, list, quote, preformatted, or a leaf)."""
    if not isinstance(element, dict):
        return ""
    kind = element.get("type")
    if kind == "text":
        return str(element.get("text") or "")
    if kind == "link":
        return str(element.get("text") or element.get("url") or "")
    if kind == "user":
        return f"<@{element.get('user_id')}>"
    if kind == "channel":
        return f"<#{element.get('channel_id')}>"
    if kind == "emoji":
        return f":{element.get('name')}:"
    children = [render_rich_text(child) for child in element.get("elements") or []]
    if kind == "rich_text_list":
        return "\n".join(f"• {child}" for child in children) + "\n"
    return "".join(children)


def rich_text_for(text: str) -> list[JSON]:
    """The ``rich_text`` block Slack attaches to a message a person typed (mentions split out)."""
    elements: list[JSON] = []
    for index, piece in enumerate(_MENTION.split(text)):
        if index % 2:
            elements.append({"type": "user", "user_id": piece})
        elif piece:
            elements.append({"type": "text", "text": piece})
    return [
        {
            "type": "rich_text",
            "block_id": "fake0",
            "elements": [{"type": "rich_text_section", "elements": elements}],
        }
    ]


_MENTION = re.compile(r"<@([A-Z0-9]+)>")
