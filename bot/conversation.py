"""A thread's earlier turns, replayed to Claude within bounds. Pure functions.

Stored turns are the API messages as sent and received. Replaying them keeps the newest
turns whole; when the history is over its budget, older answers are first reduced to
their text (the code and outputs of earlier steps dropped), then the oldest exchanges
are dropped, the newest always kept.

Prompt-cache breakpoints (:func:`with_cache_breakpoints`): the engine marks the system
prompt and the tools; the messages get the rest of the four the API allows — one at the end
of the newest content, so the request writes its whole prefix to the cache, and the others
exactly where earlier requests of the conversation wrote theirs (:func:`cache_anchors`, and
the end of each paused call), so their entries are read however many blocks they lie back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

THINKING_TYPES = frozenset({"thinking", "redacted_thinking"})
# docs: build-with-claude/prompt-caching — "Thinking blocks cannot be cached directly with
# cache_control"; container uploads are left out of the stored history, so an entry ending at
# one could never be read by a follow-up.
NOT_CACHEABLE = THINKING_TYPES | {"container_upload"}
#: docs: build-with-claude/prompt-caching — "You can define up to 4 cache breakpoints"
#: (tools, system and messages together); a fifth is a 400.
MAX_CACHE_BREAKPOINTS = 4
CACHE_CONTROL = {"type": "ephemeral"}
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


Position = tuple[int, int]  # (message index, block index)


def cacheable(block: dict[str, Any]) -> bool:
    """Whether a breakpoint may go on ``block``. docs: build-with-claude/prompt-caching —
    thinking blocks can't carry one, and "Empty text blocks cannot be cached"."""
    return block.get("type") not in NOT_CACHEABLE and not (block.get("type") == "text" and not block.get("text"))


def last_cacheable(messages: Sequence[dict[str, Any]]) -> Position | None:
    """The last block of ``messages`` that can carry a breakpoint."""
    for index in reversed(range(len(messages))):
        for block_index in reversed(range(len(messages[index]["content"]))):
            if cacheable(messages[index]["content"][block_index]):
                return index, block_index
    return None


def cache_anchors(messages: Sequence[dict[str, Any]]) -> list[Position]:
    """Where earlier requests of this conversation wrote cache entries, oldest first: the end
    of each earlier user turn (each answer's first call marked the end of its question)."""
    anchors = []
    for index, message in enumerate(messages[:-1]):
        ends = [i for i, block in enumerate(message["content"]) if cacheable(block)]
        if message["role"] == "user" and ends:
            anchors.append((index, ends[-1]))
    return anchors


def with_cache_breakpoints(
    messages: Sequence[dict[str, Any]], anchors: Sequence[Position], *, slots: int
) -> list[dict[str, Any]]:
    """A copy of ``messages`` with at most ``slots`` cache breakpoints: one on the last
    cacheable block (this request's entry), the rest on the newest ``anchors`` before it.

    docs: build-with-claude/prompt-caching — a read is found only at a breakpoint or at the
    block boundaries "up to approximately 20 blocks before" it, and only where an earlier
    request wrote an entry. A breakpoint exactly on the previous entry finds it however much
    content (a long paused turn, a long answer) lies between the two.
    """
    chosen: list[Position] = []
    end = last_cacheable(messages)
    if end is not None and slots > 0:
        chosen.append(end)
        for anchor in reversed(anchors):
            if len(chosen) == slots:
                break
            if anchor < end and anchor not in chosen:
                chosen.append(anchor)
    marked = set(chosen)
    copied = []
    for index, message in enumerate(messages):
        content = []
        for block_index, block in enumerate(message["content"]):
            block = clean_block(block)
            if (index, block_index) in marked:
                block["cache_control"] = dict(CACHE_CONTROL)
            content.append(block)
        copied.append({**message, "content": content})
    return copied


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
