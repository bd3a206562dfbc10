"""How each model is asked to think, and whether it takes an effort level. Pure functions.

docs: build-with-claude/thinking (linked from anthropic 2.17's ``ThinkingConfigParam``): "Which
``type`` values are accepted, and what happens when you omit ``thinking``, depend on the model."
- Current models think adaptively: Claude Sonnet 5.5 runs adaptive thinking when ``thinking`` is
  omitted and rejects ``disabled`` and budgets (models/sonnet-5-5/migration-guide); Claude Opus
  4.7 thinks only when asked for ``adaptive`` and rejects ``enabled`` with a 400
  (build-with-claude/thinking-troubleshooting). Asking for ``{"type": "adaptive"}`` explicitly is
  therefore right for every model from 4.6 on, and the effort level sets how deep it thinks.
- Claude Sonnet 4.5, Opus 4.5, Haiku 4.5 and earlier know only extended thinking with a
  ``budget_tokens`` of at least 1,024 and below ``max_tokens`` (the bot gives it half).
- ``output_config.effort`` is accepted by the adaptive models and by Claude Opus 4.5, not by
  Sonnet 4.5, Haiku 4.5 or earlier models (build-with-claude/effort).
Thinking tokens count toward ``max_tokens``; thinking blocks are echoed back unchanged and never
shown to people.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MIN_THINKING_BUDGET = 1_024

_MODEL = re.compile(r"^claude-(?P<family>[a-z]+)-(?P<major>\d+)(?:-(?P<minor>\d{1,2}))?(?:-\d{8})?(?:[-@].*)?$")
_OLD_STYLE = re.compile(r"^claude-\d+(?:-\d+)?-[a-z]+")  # claude-3-7-sonnet-…, claude-3-5-haiku-…


@dataclass(frozen=True)
class ThinkingPlan:
    """What a request to one model says about thinking and effort."""

    thinking: dict[str, Any] | None
    effort: bool


def _version(model: str) -> tuple[str, float] | None:
    if _OLD_STYLE.match(model):
        return "legacy", 3.0
    match = _MODEL.match(model)
    if match is None:
        return None
    minor = match["minor"] or "0"
    return match["family"], float(f"{match['major']}.{minor}")


def thinking_plan(model: str, max_tokens: int) -> ThinkingPlan:
    """The ``thinking`` parameter (None: leave it out) and whether to send an effort level."""
    version = _version(model)
    if version is None:  # a model this code doesn't know: a newer one, which thinks adaptively
        return ThinkingPlan({"type": "adaptive"}, effort=True)
    family, number = version
    if number >= 4.6 or family in ("mythos", "fable"):
        return ThinkingPlan({"type": "adaptive"}, effort=True)
    budget = max(MIN_THINKING_BUDGET, max_tokens // 2)
    thinking = {"type": "enabled", "budget_tokens": budget} if budget < max_tokens else None
    return ThinkingPlan(thinking, effort=family == "opus" and number >= 4.5)
