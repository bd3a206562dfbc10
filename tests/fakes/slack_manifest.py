"""The app's manifest as the fake Slack workspace installed it: the bot scopes it granted,
the bot events it subscribed to and whether its Home tab is on.

``manifest.yml`` is read with a few lines of parsing (no YAML library is a dependency):
list items (``- value``) and ``key: value`` scalars, each under the path of mapping keys
that encloses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"

COMMENT = re.compile(r"(?:^|\s)#")

Path_ = tuple[str, ...]


@dataclass
class Manifest:
    items: dict[Path_, list[str]] = field(default_factory=dict)  # "- value" lines under a key path
    scalars: dict[Path_, str] = field(default_factory=dict)  # "key: value" lines, by their full path


def read_manifest(text: str | None = None) -> Manifest:
    """``manifest.yml`` (or ``text``), as list items and scalars by key path."""
    lines = (MANIFEST.read_text() if text is None else text).splitlines()
    path: list[tuple[int, str]] = []  # (indent, key) of the mapping keys enclosing the current line
    manifest = Manifest()
    for raw in lines:
        line = COMMENT.split(raw, maxsplit=1)[0].rstrip()  # a comment: "#" at the start or after a space
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        item = line.strip()
        while path and path[-1][0] >= indent and not (item.startswith("- ") and path[-1][0] == indent):
            path.pop()
        keys = tuple(key for _, key in path)
        if item.startswith("- "):
            manifest.items.setdefault(keys, []).append(item[2:].strip())
        elif item.endswith(":"):
            path.append((indent, item[:-1]))
        elif ": " in item:
            key, value = item.split(": ", 1)
            manifest.scalars[(*keys, key)] = value.strip().strip('"')
    return manifest


def manifest_bot_scopes(text: str | None = None) -> frozenset[str]:
    """The bot scopes ``manifest.yml`` (or ``text``) asks for."""
    return frozenset(read_manifest(text).items.get(("oauth_config", "scopes", "bot"), []))


def manifest_bot_events(text: str | None = None) -> frozenset[str]:
    """The bot events ``manifest.yml`` (or ``text``) subscribes to."""
    return frozenset(read_manifest(text).items.get(("settings", "event_subscriptions", "bot_events"), []))


def manifest_home_tab_enabled(text: str | None = None) -> bool:
    """Whether ``manifest.yml`` (or ``text``) turns the app's Home tab on."""
    return read_manifest(text).scalars.get(("features", "app_home", "home_tab_enabled")) == "true"
