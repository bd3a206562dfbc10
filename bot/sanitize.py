"""Cleaning what comes in and neutralising what goes out. Pure functions only.

Inbound, a Slack message's text is Slack markup (``<@U123>``, ``<https://x|label>``,
``&amp;``) possibly carrying invisible characters; :func:`clean_question` turns it into
plain text for the prompt. Outbound, anything Claude wrote passes :func:`neutralize`
before it reaches Slack, so it can neither ping people nor leak credentials.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_MAX_QUESTION_CHARS = 4_000

# Bidirectional overrides/isolates and zero-width characters: invisible, and used to
# disguise text. Line breaks and tabs are the only control characters kept.
_INVISIBLE = dict.fromkeys(
    [
        *range(0x202A, 0x202F),  # LRE, RLE, PDF, LRO, RLO
        *range(0x2066, 0x206A),  # LRI, RLI, FSI, PDI
        0x200E,
        0x200F,
        0x061C,  # directional marks
        0x200B,
        0x200C,
        0x200D,
        0x2060,
        0xFEFF,  # zero-width space/joiners, word joiner, BOM
        0x00AD,  # soft hyphen
    ]
)

_SLACK_TOKEN = re.compile(r"<([^<>\n]+)>")


@dataclass(frozen=True)
class CleanText:
    text: str
    truncated: bool = False


def strip_invisible(text: str) -> str:
    """Remove control characters (but newlines and tabs) and invisible formatting."""
    text = text.translate(_INVISIBLE)
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))


def _plain_slack_token(body: str, bot_user_id: str | None, user_names: Mapping[str, str]) -> str:
    """The plain-text reading of one ``<...>`` Slack markup token."""
    target, _, label = body.partition("|")
    if target.startswith("@"):
        user_id = target[1:]
        if user_id == bot_user_id:
            return ""
        name = label or user_names.get(user_id)
        return f"@{name}" if name else ""
    if target.startswith("#"):
        return f"#{label}" if label else ""
    if target.startswith("!"):
        # <!here>, <!channel>, <!subteam^S1|@team>, <!date^...|fallback>: keep only a label.
        return label.lstrip("@") if label and not target.startswith("!date") else (label or "")
    if label:
        return f"{label} ({target})" if label != target.removeprefix("mailto:") else label
    return target.removeprefix("mailto:")


def clean_question(
    text: str,
    *,
    bot_user_id: str | None = None,
    user_names: Mapping[str, str] | None = None,
    max_chars: int = DEFAULT_MAX_QUESTION_CHARS,
) -> CleanText:
    """Slack message text → plain question text.

    Mentions of the bot disappear, other mentions become names (or vanish when unknown),
    links become their text, entities are decoded, invisible characters are dropped,
    whitespace is tidied and the result is capped at ``max_chars``.
    """
    names = user_names or {}
    plain = _SLACK_TOKEN.sub(lambda m: _plain_slack_token(m.group(1), bot_user_id, names), text)
    plain = html.unescape(plain)
    plain = strip_invisible(plain)
    plain = re.sub(r"[ \t]+", " ", plain)
    plain = re.sub(r"\n{3,}", "\n\n", plain).strip()
    if len(plain) > max_chars:
        return CleanText(plain[:max_chars].rstrip(), truncated=True)
    return CleanText(plain)


def mentions_user(text: str, user_id: str) -> bool:
    """Whether Slack message text mentions ``user_id`` (``<@U123>`` or ``<@U123|name>``)."""
    return re.search(rf"<@{re.escape(user_id)}(\|[^>]*)?>", text) is not None


# -- outbound -------------------------------------------------------------------------

ZWSP = "\u200b"

# Slack's special syntax: <!channel>, <!here>, <!everyone>, <!subteam^…>, <@U…>, <#C…>.
_SPECIAL_MARKUP = re.compile(r"<(?=[!@#])")
# Bare words that notify when link_names is on somewhere downstream.
_BARE_BROADCAST = re.compile(r"@(?=(channel|here|everyone)\b)", re.IGNORECASE)

_SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("slack-token", re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{8,}")),
    ("slack-app-token", re.compile(r"\bxapp-[A-Za-z0-9-]{8,}")),
    ("anthropic-key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{8,}")),
    ("aws-key", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("bearer", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}")),
    (
        "private-key",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)"),
    ),
)


def redact_secrets(text: str) -> str:
    """Replace anything shaped like a credential with ``[redacted <kind>]``."""
    for kind, pattern in _SECRET_PATTERNS:
        text = pattern.sub(f"[redacted {kind}]", text)
    return text


_BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C])


def neutralize(text: str) -> str:
    """Make model-written text safe to post: no pings, no credentials, no disguises.

    Mention markup stays visible but inert (a zero-width space after ``<`` or ``@`` keeps
    Slack from parsing it), secrets are redacted, and bidirectional overrides (which can
    make text read differently from what it is) are removed.
    """
    text = redact_secrets(text).translate(_BIDI_CONTROLS)
    text = _SPECIAL_MARKUP.sub("<" + ZWSP, text)
    return _BARE_BROADCAST.sub("@" + ZWSP, text)
