"""The app's manifest as the fake Slack workspace installed it: the bot scopes it granted.

``manifest.yml`` is read with a few lines of parsing (no YAML library is a dependency):
the ``- scope`` items under ``oauth_config: scopes: bot:``.
"""

from __future__ import annotations

from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


def manifest_bot_scopes(text: str | None = None) -> frozenset[str]:
    """The bot scopes ``manifest.yml`` (or ``text``) asks for."""
    lines = (MANIFEST.read_text() if text is None else text).splitlines()
    path: list[tuple[int, str]] = []  # (indent, key) of the mapping keys enclosing the current line
    scopes: set[str] = set()
    for raw in lines:
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        item = line.strip()
        while path and path[-1][0] >= indent and not (item.startswith("- ") and path[-1][0] == indent):
            path.pop()
        keys = [key for _, key in path]
        if item.startswith("- "):
            if keys[-3:] == ["oauth_config", "scopes", "bot"]:
                scopes.add(item[2:].strip())
        elif item.endswith(":"):
            path.append((indent, item[:-1]))
    return frozenset(scopes)
