"""The bot's interactive controls: Stop while a run goes; 👍/👎, delete and the code and
notebook links under every answer; the "what was wrong?" form. Pure Block Kit.

Every control carries the run id in its ``value`` (or the form in its
``private_metadata``), so a click works whichever process receives it, after a restart too:
the rest comes from the store.

Stop is a button in an actions block, in a message under the progress: Slack's
``icon_button`` offers only a trash icon (docs: block-elements/icon-button-element — "The
trash icon is the only icon available at this time"), which reads as "delete", and a
stream's blocks can't be taken away again once the run ends, while a message can.
"""

from __future__ import annotations

import json
from typing import Any

from bot.sanitize import neutralize
from bot.schema import RATINGS, Rating

STOP = "stop_run"
RATE = "rate_answer"
DELETE = "delete_answer"
COMMENT_FORM = "feedback_comment"
COMMENT_INPUT = "comment"
COMMENT_MAX_CHARS = 2000

# The generated files an answer links to, by name, in this order.
LINKED_FILES = (("analysis_code.py", "Code"), ("analysis.ipynb", "Notebook"))

JSON = dict[str, Any]


def _plain(text: str) -> JSON:
    return {"type": "plain_text", "text": text, "emoji": True}


def stop_blocks(run_id: int) -> list[JSON]:
    return [
        {
            "type": "actions",
            "block_id": f"stop-{run_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": STOP,
                    "text": _plain("Stop"),
                    "style": "danger",
                    "value": str(run_id),
                    "accessibility_label": "Stop this analysis",
                    "confirm": {
                        "title": _plain("Stop the analysis?"),
                        "text": _plain("The work so far is discarded; you can ask again in this thread."),
                        "confirm": _plain("Stop"),
                        "deny": _plain("Keep going"),
                        "style": "danger",
                    },
                }
            ],
        }
    ]


def answer_actions(run_id: int, links: dict[str, str]) -> list[JSON]:
    """Blocks under an answer: links to its code and notebook (``links``: file name →
    permalink, of the files posted), then 👍/👎 and delete."""
    blocks: list[JSON] = []
    shown = [f"{label}: <{links[name]}|{name}>" for name, label in LINKED_FILES if name in links]
    if shown:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(shown)}]})
    blocks.append(
        {
            "type": "context_actions",
            "block_id": f"answer-{run_id}",
            "elements": [
                {
                    "type": "feedback_buttons",
                    "action_id": RATE,
                    "positive_button": {
                        "text": _plain("👍"),
                        "value": f"good:{run_id}",
                        "accessibility_label": "This answer helped",
                    },
                    "negative_button": {
                        "text": _plain("👎"),
                        "value": f"bad:{run_id}",
                        "accessibility_label": "This answer didn't help",
                    },
                },
                {
                    "type": "icon_button",
                    "action_id": DELETE,
                    "icon": "trash",
                    "text": _plain("Delete this answer"),
                    "value": str(run_id),
                    "accessibility_label": "Delete this answer and its files",
                    "confirm": {
                        "title": _plain("Delete this answer?"),
                        "text": _plain("Its messages, charts and files are deleted from this thread."),
                        "confirm": _plain("Delete"),
                        "deny": _plain("Cancel"),
                        "style": "danger",
                    },
                },
            ],
        }
    )
    return blocks


def comment_form(run_id: int, *, channel_id: str) -> JSON:
    """The optional "what was wrong?" form a 👎 opens."""
    return {
        "type": "modal",
        "callback_id": COMMENT_FORM,
        "private_metadata": json.dumps({"run_id": run_id, "channel_id": channel_id}),
        "title": _plain("What was wrong?"),
        "submit": _plain("Send"),
        "close": _plain("Skip"),
        "blocks": [
            {
                "type": "input",
                "block_id": COMMENT_INPUT,
                "optional": True,
                "label": _plain("What was wrong with this answer? (optional)"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": COMMENT_INPUT,
                    "multiline": True,
                    "max_length": COMMENT_MAX_CHARS,
                },
            }
        ],
    }


def run_of(value: object) -> int | None:
    """The run id a Stop or delete button carries; None for anything else."""
    text = str(value or "")
    return int(text) if text.isdigit() else None


def rating_of(value: object) -> tuple[Rating, int] | None:
    """(rating, run id) from a feedback button's value ("good:12"); None for anything else."""
    rating, _, run = str(value or "").partition(":")
    for known in RATINGS:
        if rating == known and run.isdigit():
            return known, int(run)
    return None


def comment_of(view: JSON) -> tuple[int, str, str] | None:
    """(run id, channel id, comment) from a submitted "what was wrong?" form."""
    try:
        meta = json.loads(str(view.get("private_metadata") or ""))
        run_id, channel_id = int(meta["run_id"]), str(meta.get("channel_id") or "")
    except (ValueError, KeyError, TypeError):
        return None
    values = (view.get("state") or {}).get("values") or {}
    typed = ((values.get(COMMENT_INPUT) or {}).get(COMMENT_INPUT) or {}).get("value") or ""
    return run_id, channel_id, neutralize(str(typed))[:COMMENT_MAX_CHARS]
