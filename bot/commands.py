"""``/analyze`` text → what the person wants. Pure functions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast

# A Slack file link as it arrives in command text: <https://x.slack.com/files/U…/F…/name|label> or bare.
_FILE_LINK = re.compile(r"<?https://[^\s|>]*?/files/[A-Z0-9]+/(F[A-Z0-9]+)(?:/[^\s|>]*)?(?:\|[^>]*)?>?")
SUBCOMMANDS = ("help", "usage", "forget")
CommandKind = Literal["analyze", "help", "usage", "forget"]


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    question: str = ""
    file_ids: tuple[str, ...] = ()


def parse_command(text: str) -> Command:
    """``help`` / ``usage`` / ``forget`` alone are subcommands; anything else is a question,
    with any Slack file links in it taken out as the files to analyse."""
    stripped = text.strip()
    if stripped.lower() in SUBCOMMANDS:
        return Command(cast(CommandKind, stripped.lower()))
    file_ids = tuple(dict.fromkeys(_FILE_LINK.findall(stripped)))
    question = re.sub(r"\s{2,}", " ", _FILE_LINK.sub(" ", stripped)).strip()
    return Command("analyze", question=question, file_ids=file_ids)


def help_text(*, max_file_mb: float, recent_hours: float, command: str = "/analyze") -> str:
    return "\n".join(
        [
            f"*{command}* — ask the analyst about a data file, right here in the channel.",
            f"• `{command} what drives churn?` analyses the file you shared most recently in this channel "
            f"(within the last {recent_hours:g} h).",
            f"• `{command} <file link> compare regions` analyses a specific file (paste its Slack link).",
            "• Or just mention me with a file attached, or DM me a spreadsheet. Ask follow-ups in the thread.",
            f"• `{command} usage` — your analyses, tokens and estimated cost.",
            f"• `{command} forget` — delete the files you shared from Anthropic and your conversation history.",
            f"Accepted: CSV, TSV, Excel, JSON, XML, Parquet, text/log, PDF and images, up to {max_file_mb:g} MB.",
        ]
    )
