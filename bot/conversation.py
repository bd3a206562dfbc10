"""A thread's earlier turns, replayed to Claude within bounds. Pure functions.

Stored turns are the API messages as sent and received. Replaying them keeps the newest
turns whole; when the history is over its budget, older answers are first reduced to
their text (the code and outputs of earlier steps dropped), then the oldest exchanges
are dropped, the newest always kept. Prompt-cache breakpoints go on the system prompt,
the tools, the end of the history and the newest turn (the API allows four).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

THINKING_TYPES = frozenset({"thinking", "redacted_thinking"})
NOT_CACHEABLE = THINKING_TYPES
SHORTENED_NOTE = "(Earlier parts of this conversation were left out to keep it within limits.)"


def estimate_tokens(value: Any) -> int:
    """A cheap, conservative token estimate (about four characters a token)."""
    return len(json.dumps(value, ensure_ascii=False)) // 4 + 1


def clean_block(block: dict[str, Any]) -> dict[str, Any]:
    """A content block as it should be stored and replayed: no cache markers."""
    return {k: v for k, v in block.items() if k != "cache_control"}


def storable(content: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Content to keep in the history: container uploads are per-container, not history."""
    return [clean_block(b) for b in content if b.get("type") != "container_upload"]


def text_only(content: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """An earlier answer reduced to what Claude wrote (tool calls and outputs dropped)."""
    texts = [{"type": "text", "text": b["text"]} for b in content if b.get("type") == "text" and b.get("text")]
    return texts or [{"type": "text", "text": "(Earlier analysis steps; no written answer.)"}]


@dataclass(frozen=True)
class History:
    messages: list[dict[str, Any]]
    dropped_turns: int = 0
    shortened_turns: int = 0


def replay(
    turns: Sequence[dict[str, Any]],
    *,
    model: str,
    max_messages: int,
    max_tokens: int,
) -> History:
    """API messages for the stored ``turns`` ({"role", "content", "model"}), bounded."""
    messages: list[dict[str, Any]] = []
    for turn in turns:
        content = storable(turn["content"])
        if turn["role"] == "assistant" and turn.get("model") != model:
            # Thinking blocks can only be read by the model that wrote them.
            content = [b for b in content if b.get("type") not in THINKING_TYPES]
        if content:
            messages.append({"role": turn["role"], "content": content})
    messages = _whole_exchanges(messages)
    dropped = 0
    keep = max(2, max_messages - max_messages % 2)
    if len(messages) > keep:
        dropped = (len(messages) - keep) // 2
        messages = messages[-keep:]
    shortened = 0
    for index, message in enumerate(messages[:-2]):
        if estimate_tokens(messages) <= max_tokens:
            break
        if message["role"] == "assistant":
            messages[index] = {"role": "assistant", "content": text_only(message["content"])}
            shortened += 1
    while estimate_tokens(messages) > max_tokens and len(messages) > 2:
        messages = messages[2:]
        dropped += 1
    if dropped:
        first = messages[0]
        messages[0] = {"role": "user", "content": [{"type": "text", "text": SHORTENED_NOTE}, *first["content"]]}
    return History(messages, dropped, shortened)


def _whole_exchanges(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only complete user → assistant pairs, in order (a half-recorded exchange is dropped)."""
    pairs: list[dict[str, Any]] = []
    index = 0
    while index + 1 < len(messages):
        if messages[index]["role"] == "user" and messages[index + 1]["role"] == "assistant":
            pairs.extend(messages[index : index + 2])
            index += 2
        else:
            index += 1
    return pairs


def mark_cache_breakpoint(message: dict[str, Any]) -> None:
    """Put a cache breakpoint on the last cacheable block of ``message``."""
    for block in reversed(message["content"]):
        if block.get("type") not in NOT_CACHEABLE and not (block.get("type") == "text" and not block.get("text")):
            block["cache_control"] = {"type": "ephemeral"}
            return


def halved(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history with its older half of exchanges left out (used when the API says the
    prompt is too long despite the estimate). Empty when there is nothing left to cut."""
    exchanges = len(messages) // 2
    if exchanges <= 1:
        return []
    kept = [dict(m) for m in messages[2 * ((exchanges + 1) // 2) :]]
    first = kept[0]
    notes = [b for b in first["content"] if b.get("text") == SHORTENED_NOTE]
    if not notes:
        kept[0] = {"role": "user", "content": [{"type": "text", "text": SHORTENED_NOTE}, *first["content"]]}
    return kept
