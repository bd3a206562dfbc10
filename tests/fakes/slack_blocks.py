"""Block Kit in the fake Slack: ONE strict check, plus rendering blocks as a person reads them.

``validate_blocks`` is the single check every Block Kit payload the fake receives goes
through (``chat.postMessage``/``update``/``postEphemeral``, ``chat.stopStream`` and the
``blocks`` chunks of streams, ``files.completeUploadExternal``, ``response_url`` and
slash-command answers, and a ``views.publish`` Home tab's blocks through
``validate_home_view``). It refuses what Slack's Block Kit reference says Slack refuses:

* unknown block, element, text-object and rich-text types;
* missing required fields, and any field a type does not document;
* the documented limits: 50 blocks per message (100 in a Home tab), text lengths, items per array
  (elements, fields, options, rows, cells), unique ``block_id`` per message and unique
  ``action_id`` per block, and 12,000 characters of ``markdown`` blocks per payload.

Each type's rules are a ``Shape`` naming its reference page
(https://docs.slack.dev/reference/block-kit/…). Errors come back in Slack's
``response_metadata.messages`` style:
``[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]
#: a rule for one value: (value, its json-pointer) → problems
Check = Callable[[Any, str], list[str]]

DOCS = "https://docs.slack.dev/reference/block-kit/"
# docs: block-kit/blocks — "You can include up to 50 blocks in each message, and 100 blocks in modals or Home tabs."
MAX_BLOCKS = 50
# docs: blocks/markdown-block — "The cumulative limit for all markdown blocks in a single payload is 12,000 characters."
MARKDOWN_TOTAL_LIMIT = 12_000
SECTION_TEXT_LIMIT = 3000
SECTION_FIELD_LIMIT = 2000
HEADER_TEXT_LIMIT = 150
BLOCK_ID_LIMIT = 255
ACTION_ID_LIMIT = 255


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
    """Raise ``BlocksRejected`` if Slack would refuse ``blocks`` (a message's, by default)."""
    if len(blocks) > max_blocks:
        raise BlocksRejected(
            too_many_error, [f"[ERROR] no more than {max_blocks} items allowed [json-pointer:/{name}]"]
        )
    problems: list[str] = []
    seen_ids: set[str] = set()
    markdown_total = 0
    for index, block in enumerate(blocks):
        pointer = f"/{name}/{index}"
        problems.extend(typed(BLOCKS, "block")(block, pointer))
        if isinstance(block, dict):
            problems.extend(_duplicate_block_id(block, pointer, seen_ids))
            if block.get("type") == "markdown" and isinstance(block.get("text"), str):
                markdown_total += len(block["text"])
    if markdown_total > MARKDOWN_TOTAL_LIMIT:
        problems.append(
            f"[ERROR] markdown blocks must total no more than {MARKDOWN_TOTAL_LIMIT} characters "
            f"(got {markdown_total}) [json-pointer:/{name}]"
        )
    if problems:
        raise BlocksRejected("invalid_blocks", problems)


def _duplicate_block_id(block: JSON, pointer: str, seen: set[str]) -> list[str]:
    # docs: blocks (every block) — "block_id should be unique for each message and each iteration of a message."
    block_id = block.get("block_id")
    if not isinstance(block_id, str):
        return []
    if block_id in seen:
        return [f"[ERROR] duplicate block_id {block_id!r} [json-pointer:{pointer}/block_id]"]
    seen.add(block_id)
    return []


# --------------------------------------------------------------------------- rules


def problem(pointer: str, message: str) -> list[str]:
    return [f"[ERROR] {message} [json-pointer:{pointer}]"]


def string(max_length: int | None = None, *, min_length: int = 1, pattern: str | None = None) -> Check:
    """A string of ``min_length``..``max_length`` characters (matching ``pattern``)."""
    compiled = re.compile(pattern) if pattern else None

    def check(value: Any, pointer: str) -> list[str]:
        if not isinstance(value, str):
            return problem(pointer, "must be a string")
        if len(value) < min_length:
            return problem(pointer, f"must be more than {min_length - 1} characters")
        if max_length is not None and len(value) > max_length:
            return problem(pointer, f"must be less than {max_length + 1} characters")
        if compiled and not compiled.fullmatch(value):
            return problem(pointer, f"must match {pattern}")
        return []

    return check


def one_of(*values: str) -> Check:
    def check(value: Any, pointer: str) -> list[str]:
        return [] if value in values else problem(pointer, f"must be one of {', '.join(values)}")

    return check


def boolean(value: Any, pointer: str) -> list[str]:
    return [] if isinstance(value, bool) else problem(pointer, "must be a boolean")


def integer(minimum: int = 0, maximum: int | None = None) -> Check:
    def check(value: Any, pointer: str) -> list[str]:
        if not isinstance(value, int) or isinstance(value, bool):
            return problem(pointer, "must be an integer")
        if value < minimum or (maximum is not None and value > maximum):
            return problem(pointer, f"must be between {minimum} and {maximum}")
        return []

    return check


def array(item: Check, *, max_items: int | None = None, min_items: int = 1, unique_action_ids: bool = False) -> Check:
    """An array of ``min_items``..``max_items`` values, each passing ``item``."""

    def check(value: Any, pointer: str) -> list[str]:
        if not isinstance(value, list):
            return problem(pointer, "must be an array")
        if len(value) < min_items:
            return problem(pointer, f"must provide at least {min_items} items")
        if max_items is not None and len(value) > max_items:
            return problem(pointer, f"no more than {max_items} items allowed")
        problems = [p for index, entry in enumerate(value) for p in item(entry, f"{pointer}/{index}")]
        if unique_action_ids:
            problems.extend(_duplicate_action_ids(value, pointer))
        return problems

    return check


def _duplicate_action_ids(elements: list[Any], pointer: str) -> list[str]:
    # docs: block-elements (every interactive element) — action_id "Should be unique among all
    # other action_ids in the containing block."
    seen: set[str] = set()
    problems: list[str] = []
    for index, element in enumerate(elements):
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if isinstance(action_id, str):
            if action_id in seen:
                problems += problem(f"{pointer}/{index}/action_id", f"duplicate action_id {action_id!r}")
            seen.add(action_id)
    return problems


@dataclass(frozen=True)
class Shape:
    """The documented fields of one Block Kit type: each with its rule, some required."""

    doc: str
    fields: dict[str, Check]
    required: frozenset[str] = frozenset()
    #: groups of which at least one field must be present (e.g. a section's text or fields)
    any_of: tuple[frozenset[str], ...] = ()
    #: groups of which at most one field may be present
    exclusive: tuple[frozenset[str], ...] = field(default=())

    def check(self, value: Any, pointer: str, *, typed_as: str | None = None) -> list[str]:
        if not isinstance(value, dict):
            return problem(pointer, "must be an object")
        allowed = self.fields.keys() | ({"type"} if typed_as else set())
        problems = [
            f"[ERROR] unknown field {key!r} (not in {DOCS}{self.doc}) [json-pointer:{pointer}/{key}]"
            for key in value
            if key not in allowed
        ]
        problems += [
            f"[ERROR] missing required field: {key} [json-pointer:{pointer}]"
            for key in sorted(self.required)
            if key not in value
        ]
        for group in self.any_of:
            if not group & value.keys():
                problems += problem(pointer, f"must provide one of {' or '.join(sorted(group))}")
        for group in self.exclusive:
            if len(group & value.keys()) > 1:
                problems += problem(pointer, f"must provide only one of {' or '.join(sorted(group))}")
        for key, rule in self.fields.items():
            if key in value:
                problems += rule(value[key], f"{pointer}/{key}")
        return problems


def shape(shape_: Shape) -> Check:
    """An object (without a ``type``) of ``shape_``."""
    return lambda value, pointer: shape_.check(value, pointer)


def typed(catalogue: dict[str, Shape], what: str, *, only: Iterable[str] | None = None) -> Check:
    """An object whose ``type`` picks its shape from ``catalogue`` (limited to ``only``)."""
    allowed = frozenset(only) if only is not None else frozenset(catalogue)

    def check(value: Any, pointer: str) -> list[str]:
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            return problem(pointer, f"must be a {what} object with a type")
        kind = value["type"]
        if kind not in catalogue:
            return problem(f"{pointer}/type", f"unknown {what} type {kind!r}")
        if kind not in allowed:
            return problem(
                f"{pointer}/type", f"{what} type {kind!r} is not allowed here (only {', '.join(sorted(allowed))})"
            )
        return catalogue[kind].check(value, pointer, typed_as=kind)

    return check


# --------------------------------------------------------------------------- composition objects

# docs: composition-objects/text-object — plain_text: text, emoji; mrkdwn: text, verbatim.
# "text: Minimum length for this field is 1 and maximum length is 3000 characters."
TEXT_OBJECTS: dict[str, Shape] = {
    "plain_text": Shape(
        "composition-objects/text-object", {"text": string(3000), "emoji": boolean}, frozenset({"text"})
    ),
    "mrkdwn": Shape(
        "composition-objects/text-object", {"text": string(3000), "verbatim": boolean}, frozenset({"text"})
    ),
}


def text(max_length: int = 3000, *, plain_only: bool = False) -> Check:
    """A text object whose ``text`` is at most ``max_length`` characters."""
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    object_rule = typed(TEXT_OBJECTS, "text", only=kinds)

    def check(value: Any, pointer: str) -> list[str]:
        problems = object_rule(value, pointer)
        inner = value.get("text") if isinstance(value, dict) else None
        if not problems and isinstance(inner, str) and len(inner) > max_length:
            problems = problem(f"{pointer}/text", f"must be less than {max_length + 1} characters")
        return problems

    return check


plain = text(plain_only=True)

# docs: composition-objects/confirmation-dialog-object — title ≤100, text ≤300, confirm ≤30, deny ≤30, style.
CONFIRM = shape(
    Shape(
        "composition-objects/confirmation-dialog-object",
        {
            "title": text(100, plain_only=True),
            "text": text(300),
            "confirm": text(30, plain_only=True),
            "deny": text(30, plain_only=True),
            "style": one_of("primary", "danger"),
        },
        frozenset({"title", "text", "confirm", "deny"}),
    )
)
# docs: composition-objects/option-object — text ≤75, value ≤150, description ≤75, url ≤3000.
OPTION_SHAPE = Shape(
    "composition-objects/option-object",
    {"text": text(75), "value": string(150), "description": text(75), "url": string(3000)},
    frozenset({"text", "value"}),
)
OPTION = shape(OPTION_SHAPE)
# docs: composition-objects/option-group-object — label ≤75, options ≤100.
OPTION_GROUP = shape(
    Shape(
        "composition-objects/option-group-object",
        {"label": text(75, plain_only=True), "options": array(OPTION, max_items=100)},
        frozenset({"label", "options"}),
    )
)
# docs: composition-objects/slack-file-object — url or id.
SLACK_FILE = shape(
    Shape(
        "composition-objects/slack-file-object",
        {"url": string(3000), "id": string()},
        any_of=(frozenset({"url", "id"}),),
    )
)
USER_IDS = array(string(), min_items=0)
ACTION_ID = string(ACTION_ID_LIMIT)
BLOCK_ID = string(BLOCK_ID_LIMIT)
PLACEHOLDER = text(150, plain_only=True)

# --------------------------------------------------------------------------- block elements


def _interactive(doc: str, fields: dict[str, Check], required: Iterable[str] = (), **extra: Any) -> Shape:
    """An interactive element's shape: its fields plus ``action_id``."""
    return Shape(f"block-elements/{doc}", {"action_id": ACTION_ID, **fields}, frozenset(required), **extra)


def _select(doc: str, fields: dict[str, Check], *, multi: bool) -> Shape:
    common: dict[str, Check] = {"confirm": CONFIRM, "focus_on_load": boolean, "placeholder": PLACEHOLDER}
    if multi:
        common["max_selected_items"] = integer(1)
    return _interactive(doc, {**common, **fields})


FEEDBACK_BUTTON = shape(
    # docs: block-elements/feedback-buttons-element — "Button object fields": text (plain_text,
    # ≤75, required), value (≤2000, required), accessibility_label (≤75).
    Shape(
        "block-elements/feedback-buttons-element",
        {"text": text(75, plain_only=True), "value": string(2000), "accessibility_label": string(75)},
        frozenset({"text", "value"}),
    )
)
STATIC_OPTIONS: dict[str, Check] = {
    "options": array(OPTION, max_items=100),
    "option_groups": array(OPTION_GROUP, max_items=100),
}
CONVERSATION_FILTER = shape(
    Shape(
        "composition-objects/conversation-filter-object",
        {
            "include": array(one_of("im", "mpim", "private", "public"), max_items=4),
            "exclude_external_shared_channels": boolean,
            "exclude_bot_users": boolean,
        },
    )
)

ELEMENTS: dict[str, Shape] = {
    # docs: block-elements/button-element — text ≤75 (plain_text), action_id ≤255, url ≤3000,
    # value ≤2000, style primary|danger, confirm, accessibility_label ≤75.
    "button": _interactive(
        "button-element",
        {
            "text": text(75, plain_only=True),
            "url": string(3000),
            "value": string(2000),
            "style": one_of("primary", "danger"),
            "confirm": CONFIRM,
            "accessibility_label": string(75),
        },
        ["text"],
    ),
    # docs: block-elements/feedback-buttons-element — positive_button, negative_button required.
    "feedback_buttons": _interactive(
        "feedback-buttons-element",
        {"positive_button": FEEDBACK_BUTTON, "negative_button": FEEDBACK_BUTTON},
        ["positive_button", "negative_button"],
    ),
    # docs: block-elements/icon-button-element — "icon: The icon to show. The trash icon is the
    # only icon available at this time." text (plain_text) required; value ≤2000.
    "icon_button": _interactive(
        "icon-button-element",
        {
            "icon": one_of("trash"),
            "text": plain,
            "value": string(2000),
            "confirm": CONFIRM,
            "accessibility_label": string(75),
            "visible_to_user_ids": USER_IDS,
        },
        ["icon", "text"],
    ),
    # docs: block-elements/image-element — alt_text required; image_url (≤3000) or slack_file.
    "image": Shape(
        "block-elements/image-element",
        {"alt_text": string(2000), "image_url": string(3000), "slack_file": SLACK_FILE},
        frozenset({"alt_text"}),
        any_of=(frozenset({"image_url", "slack_file"}),),
        exclusive=(frozenset({"image_url", "slack_file"}),),
    ),
    # docs: block-elements/checkboxes-element — options 1..10.
    "checkboxes": _interactive(
        "checkboxes-element",
        {
            "options": array(OPTION, max_items=10),
            "initial_options": array(OPTION, max_items=10),
            "confirm": CONFIRM,
            "focus_on_load": boolean,
        },
        ["options"],
    ),
    # docs: block-elements/radio-button-group-element — options 1..10.
    "radio_buttons": _interactive(
        "radio-button-group-element",
        {
            "options": array(OPTION, max_items=10),
            "initial_option": OPTION,
            "confirm": CONFIRM,
            "focus_on_load": boolean,
        },
        ["options"],
    ),
    # docs: block-elements/overflow-menu-element — options 1..5.
    "overflow": _interactive(
        "overflow-menu-element", {"options": array(OPTION, max_items=5), "confirm": CONFIRM}, ["options"]
    ),
    # docs: block-elements/date-picker-element — initial_date YYYY-MM-DD.
    "datepicker": _interactive(
        "date-picker-element",
        {
            "initial_date": string(pattern=r"\d{4}-\d{2}-\d{2}"),
            "confirm": CONFIRM,
            "focus_on_load": boolean,
            "placeholder": PLACEHOLDER,
        },
    ),
    # docs: block-elements/time-picker-element — initial_time HH:mm, timezone.
    "timepicker": _interactive(
        "time-picker-element",
        {
            "initial_time": string(pattern=r"\d{2}:\d{2}"),
            "confirm": CONFIRM,
            "focus_on_load": boolean,
            "placeholder": PLACEHOLDER,
            "timezone": string(),
        },
    ),
    # docs: block-elements/datetime-picker-element — initial_date_time (UNIX seconds).
    "datetimepicker": _interactive(
        "datetime-picker-element", {"initial_date_time": integer(), "confirm": CONFIRM, "focus_on_load": boolean}
    ),
    # docs: block-elements/select-menu-element (static/external/users/conversations/channels).
    "static_select": _select("select-menu-element", {**STATIC_OPTIONS, "initial_option": OPTION}, multi=False),
    "external_select": _select(
        "select-menu-element", {"initial_option": OPTION, "min_query_length": integer()}, multi=False
    ),
    "users_select": _select("select-menu-element", {"initial_user": string()}, multi=False),
    "conversations_select": _select(
        "select-menu-element",
        {
            "initial_conversation": string(),
            "default_to_current_conversation": boolean,
            "response_url_enabled": boolean,
            "filter": CONVERSATION_FILTER,
        },
        multi=False,
    ),
    "channels_select": _select(
        "select-menu-element", {"initial_channel": string(), "response_url_enabled": boolean}, multi=False
    ),
    # docs: block-elements/multi-select-menu-element
    "multi_static_select": _select(
        "multi-select-menu-element", {**STATIC_OPTIONS, "initial_options": array(OPTION, max_items=100)}, multi=True
    ),
    "multi_external_select": _select(
        "multi-select-menu-element",
        {"initial_options": array(OPTION, max_items=100), "min_query_length": integer()},
        multi=True,
    ),
    "multi_users_select": _select("multi-select-menu-element", {"initial_users": USER_IDS}, multi=True),
    "multi_conversations_select": _select(
        "multi-select-menu-element",
        {"initial_conversations": USER_IDS, "default_to_current_conversation": boolean, "filter": CONVERSATION_FILTER},
        multi=True,
    ),
    "multi_channels_select": _select("multi-select-menu-element", {"initial_channels": USER_IDS}, multi=True),
    # docs: block-elements/plain-text-input-element (input blocks only)
    "plain_text_input": _interactive(
        "plain-text-input-element",
        {
            "initial_value": string(min_length=0),
            "multiline": boolean,
            "min_length": integer(0, 3000),
            "max_length": integer(1, 3000),
            "dispatch_action_config": shape(
                Shape(
                    "composition-objects/dispatch-action-configuration-object",
                    {"trigger_actions_on": array(one_of("on_enter_pressed", "on_character_entered"), max_items=2)},
                )
            ),
            "focus_on_load": boolean,
            "placeholder": PLACEHOLDER,
        },
    ),
    # docs: block-elements/workflow-button-element — text ≤75, workflow required.
    "workflow_button": _interactive(
        "workflow-button-element",
        {
            "text": text(75, plain_only=True),
            "workflow": lambda value, pointer: [] if isinstance(value, dict) else problem(pointer, "must be an object"),
            "style": one_of("primary", "danger"),
            "accessibility_label": string(75),
        },
        ["text", "workflow"],
    ),
}

# docs: block-elements/ (which elements each block takes)
ACTIONS_ELEMENTS = (
    "button",
    "checkboxes",
    "datepicker",
    "datetimepicker",
    "overflow",
    "radio_buttons",
    "timepicker",
    "workflow_button",
    *(k for k in ELEMENTS if k.endswith("_select")),
)
SECTION_ACCESSORIES = (*ACTIONS_ELEMENTS, "image")
INPUT_ELEMENTS = (*ACTIONS_ELEMENTS, "plain_text_input")

# --------------------------------------------------------------------------- rich text

# docs: blocks/rich-text-block — text style: bold, italic, strike, code (and underline);
# user/channel/usergroup mentions also take highlight, client_highlight, unlink.
STYLE = shape(
    Shape(
        "blocks/rich-text-block",
        {
            name: boolean
            for name in ("bold", "italic", "strike", "code", "underline", "highlight", "client_highlight", "unlink")
        },
    )
)


def _leaf(fields: dict[str, Check], required: Iterable[str]) -> Shape:
    return Shape("blocks/rich-text-block", fields, frozenset(required))


# docs: blocks/rich-text-block — "Rich text element types": text, link, user, channel,
# usergroup, emoji, broadcast, color, date.
RICH_TEXT_LEAVES: dict[str, Shape] = {
    "text": _leaf({"text": string(min_length=0), "style": STYLE}, ["text"]),
    "link": _leaf({"url": string(), "text": string(min_length=0), "unsafe": boolean, "style": STYLE}, ["url"]),
    "user": _leaf({"user_id": string(), "style": STYLE}, ["user_id"]),
    "channel": _leaf({"channel_id": string(), "style": STYLE}, ["channel_id"]),
    "usergroup": _leaf({"usergroup_id": string(), "style": STYLE}, ["usergroup_id"]),
    "emoji": _leaf({"name": string(), "unicode": string(), "url": string(), "skin_tone": integer(1, 6)}, ["name"]),
    "broadcast": _leaf({"range": one_of("here", "channel", "everyone")}, ["range"]),
    "color": _leaf({"value": string()}, ["value"]),
    "date": _leaf(
        {"timestamp": integer(), "format": string(), "url": string(), "fallback": string()}, ["timestamp", "format"]
    ),
}
LEAF = typed(RICH_TEXT_LEAVES, "rich text element")
LEAVES = array(LEAF, min_items=0)
SECTION_SHAPE = Shape("blocks/rich-text-block", {"elements": LEAVES}, frozenset({"elements"}))
BORDER = integer(0, 1)
RICH_TEXT_CONTAINERS: dict[str, Shape] = {
    # docs: blocks/rich-text-block — rich_text_section, rich_text_list (style bullet|ordered,
    # elements of rich_text_section, indent, offset, border), rich_text_preformatted
    # (elements, border, language), rich_text_quote (elements, border).
    "rich_text_section": SECTION_SHAPE,
    "rich_text_list": Shape(
        "blocks/rich-text-block",
        {
            "style": one_of("bullet", "ordered"),
            "elements": array(typed({"rich_text_section": SECTION_SHAPE}, "rich text list item")),
            "indent": integer(0, 8),
            "offset": integer(),
            "border": BORDER,
        },
        frozenset({"style", "elements"}),
    ),
    "rich_text_preformatted": Shape(
        "blocks/rich-text-block",
        {"elements": LEAVES, "border": BORDER, "language": string()},
        frozenset({"elements"}),
    ),
    "rich_text_quote": Shape("blocks/rich-text-block", {"elements": LEAVES, "border": BORDER}, frozenset({"elements"})),
}
RICH_TEXT_SHAPE = Shape(
    "blocks/rich-text-block",
    {"elements": array(typed(RICH_TEXT_CONTAINERS, "rich text"), min_items=0), "block_id": BLOCK_ID},
    frozenset({"elements"}),
)

# --------------------------------------------------------------------------- blocks

# docs: blocks/table-block — cells "can have a type of raw_text or rich_text".
TABLE_CELLS: dict[str, Shape] = {
    "raw_text": Shape("blocks/table-block", {"text": string(min_length=0)}, frozenset({"text"})),
    "rich_text": RICH_TEXT_SHAPE,
}
COLUMN_SETTING = Shape("blocks/table-block", {"align": one_of("left", "center", "right"), "is_wrapped": boolean})


def _column_setting(value: Any, pointer: str) -> list[str]:
    # docs: blocks/table-block — column_settings items may be null to keep a column's default
    return [] if value is None else COLUMN_SETTING.check(value, pointer)


def _block(doc: str, fields: dict[str, Check], required: Iterable[str] = (), **extra: Any) -> Shape:
    return Shape(f"blocks/{doc}", {"block_id": BLOCK_ID, **fields}, frozenset(required), **extra)


BLOCKS: dict[str, Shape] = {
    # docs: blocks/actions-block — "elements: An array of interactive element objects ...
    # There is a maximum of 25 elements in each action block."
    "actions": _block(
        "actions-block",
        {"elements": array(typed(ELEMENTS, "element", only=ACTIONS_ELEMENTS), max_items=25, unique_action_ids=True)},
        ["elements"],
    ),
    # docs: blocks/context-block — "elements: An array of image elements and text objects.
    # Maximum number of items is 10."
    "context": _block(
        "context-block",
        {"elements": array(typed({**TEXT_OBJECTS, "image": ELEMENTS["image"]}, "context element"), max_items=10)},
        ["elements"],
    ),
    # docs: blocks/context-actions-block — "elements: An array of feedback buttons elements and
    # icon button elements. Maximum number of items is 5."
    "context_actions": _block(
        "context-actions-block",
        {
            "elements": array(
                typed(ELEMENTS, "element", only=("feedback_buttons", "icon_button")),
                max_items=5,
                unique_action_ids=True,
            )
        },
        ["elements"],
    ),
    # docs: blocks/divider-block
    "divider": _block("divider-block", {}),
    # docs: blocks/file-block — external_id and source ("remote") required.
    "file": _block("file-block", {"external_id": string(), "source": one_of("remote")}, ["external_id", "source"]),
    # docs: blocks/header-block — "text: ... Maximum length for the text in this field is 150 characters."
    "header": _block("header-block", {"text": text(HEADER_TEXT_LIMIT, plain_only=True)}, ["text"]),
    # docs: blocks/image-block — alt_text ≤2000; image_url ≤3000 or slack_file; title ≤2000.
    "image": _block(
        "image-block",
        {
            "alt_text": string(2000),
            "image_url": string(3000),
            "slack_file": SLACK_FILE,
            "title": text(2000, plain_only=True),
        },
        ["alt_text"],
        any_of=(frozenset({"image_url", "slack_file"}),),
        exclusive=(frozenset({"image_url", "slack_file"}),),
    ),
    # docs: blocks/input-block — label ≤2000, element, dispatch_action, hint ≤2000, optional.
    "input": _block(
        "input-block",
        {
            "label": text(2000, plain_only=True),
            "element": typed(ELEMENTS, "element", only=INPUT_ELEMENTS),
            "dispatch_action": boolean,
            "hint": text(2000, plain_only=True),
            "optional": boolean,
        },
        ["label", "element"],
    ),
    # docs: blocks/markdown-block — "text: The standard markdown-formatted text. Limit 12,000
    # characters max." (and 12,000 for all markdown blocks of a payload, checked above)
    "markdown": _block("markdown-block", {"text": string(MARKDOWN_TOTAL_LIMIT)}, ["text"]),
    # docs: blocks/rich-text-block
    "rich_text": RICH_TEXT_SHAPE,
    # docs: blocks/section-block — text ≤3000; "fields: ... Maximum number of items is 10.
    # Maximum length for the text in each item is 2000 characters."; accessory; expand.
    # "one of either the text or fields property" is required.
    "section": _block(
        "section-block",
        {
            "text": text(SECTION_TEXT_LIMIT),
            "fields": array(text(SECTION_FIELD_LIMIT), max_items=10),
            "accessory": typed(ELEMENTS, "element", only=SECTION_ACCESSORIES),
            "expand": boolean,
        },
        any_of=(frozenset({"text", "fields"}),),
    ),
    # docs: blocks/table-block — "rows: ... Maximum 100 rows. Each row object is an array with
    # a max of 20 table cells."; "column_settings: ... Maximum 20 items."
    "table": _block(
        "table-block",
        {
            "rows": array(array(typed(TABLE_CELLS, "table cell"), max_items=20), max_items=100),
            "column_settings": array(_column_setting, max_items=20),
        },
        ["rows"],
    ),
    # docs: blocks/video-block — alt_text, title (<200), thumbnail_url, video_url required;
    # author_name <50, description <200.
    "video": _block(
        "video-block",
        {
            "alt_text": string(),
            "title": text(199, plain_only=True),
            "title_url": string(),
            "thumbnail_url": string(),
            "video_url": string(),
            "author_name": string(49),
            "description": text(199, plain_only=True),
            "provider_icon_url": string(),
            "provider_name": string(),
        },
        ["alt_text", "title", "thumbnail_url", "video_url"],
    ),
}
KNOWN_BLOCK_TYPES = frozenset(BLOCKS)
TEXT_OBJECT_TYPES = frozenset(TEXT_OBJECTS)


# --------------------------------------------------------------------------- views

# docs: block-kit/blocks — "100 blocks in modals or Home tabs".
MAX_VIEW_BLOCKS = 100
# docs: reference/messaging/blocks (api.slack.com), "Available in surfaces": Home tabs take
# actions, context, divider, header, image, input, rich_text, section and video blocks; the
# file block none. The newer markdown, table and context_actions blocks are documented for
# messages (reference/block-kit/blocks/markdown-block: "for use in apps that use platform AI
# features" in messages), so a Home tab refuses them too.
HOME_TAB_BLOCKS = frozenset(
    {"actions", "context", "divider", "header", "image", "input", "rich_text", "section", "video"}
)
# docs: reference/views/home-tab-views — type ("home"), blocks (max 100) required;
# private_metadata ≤3000, callback_id ≤255, external_id optional.
HOME_VIEW = Shape(
    "../views/home-tab-views",
    {
        "type": one_of("home"),
        "blocks": lambda value, pointer: [] if isinstance(value, list) else problem(pointer, "must be an array"),
        "private_metadata": string(3000, min_length=0),
        "callback_id": string(255, min_length=0),
        "external_id": string(255),
    },
    frozenset({"type", "blocks"}),
)


def validate_home_view(view: Any) -> None:
    """Raise ``BlocksRejected`` (``invalid_arguments``, as ``views.*`` answer a bad view) if
    Slack would refuse ``view`` as a Home tab: its fields, then its blocks by the same check
    as a message's, with the Home tab's block count and block types."""
    problems = HOME_VIEW.check(view, "/view")
    if problems:
        raise BlocksRejected("invalid_arguments", problems)
    blocks = view["blocks"]
    try:
        validate_blocks(blocks, name="view/blocks", max_blocks=MAX_VIEW_BLOCKS, too_many_error="invalid_arguments")
    except BlocksRejected as rejected:
        raise BlocksRejected("invalid_arguments", rejected.messages) from None
    for index, block in enumerate(blocks):
        kind = block.get("type")
        if kind not in HOME_TAB_BLOCKS:
            problems += problem(f"/view/blocks/{index}/type", f"block type {kind!r} is not available in Home tabs")
    if problems:
        raise BlocksRejected("invalid_arguments", problems)


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
