"""README's configuration table and ``.env.example``, generated from the declarations in
``bot/settings.py`` so the three never disagree.

``python -m bot.settings_docs`` (``scripts/settings-docs``) rewrites both files;
``--check`` only reports which would change. Pure functions besides :func:`main`.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bot.settings import SECTIONS, SETTINGS, CodeExecutionTool, Setting

README_BEGIN = "<!-- settings:begin -->"
README_END = "<!-- settings:end -->"
GENERATED_BY = "generated from bot/settings.py by scripts/settings-docs"
COMMENT_WIDTH = 110  # .env.example comment lines, "# " included


def plain(value: object) -> str:
    """A default as it would be written in ``.env``: ``100`` not ``100.0``, ``false``, ``xlsx,pdf``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, CodeExecutionTool):
        return value.version
    if isinstance(value, Path):  # Path drops a leading "./"; a relative default is meant from the working directory
        return str(value) if value.is_absolute() else f"./{value}"
    if isinstance(value, tuple | frozenset):
        return ",".join(sorted(value) if isinstance(value, frozenset) else value)
    return str(value)


def shown_default(setting: Setting[Any]) -> str:
    """README's "Default" cell."""
    if setting.shown_default is not None:
        return setting.shown_default
    if setting.required:
        return "— (required)"
    value = plain(setting.default)
    return f"`{value}`" if value else "—"


def grouped(settings: Iterable[Setting[Any]]) -> list[Setting[Any]]:
    """Settings in the order of their sections (``SECTIONS``), in declaration order within one."""
    return sorted(settings, key=lambda setting: SECTIONS.index(setting.section))


def markdown_table(settings: Sequence[Setting[Any]] = SETTINGS) -> str:
    """README's configuration table, one row per variable."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for setting in grouped(settings):
        for text in (setting.env, shown_default(setting), setting.doc):
            if "|" in text or "\n" in text:
                raise ValueError(f"{setting.env}: {text!r} would break the table (no '|' or line breaks)")
        rows.append(f"| `{setting.env}` | {shown_default(setting)} | {setting.doc} |")
    return "\n".join(rows) + "\n"


def env_example(settings: Sequence[Setting[Any]] = SETTINGS) -> str:
    """``.env.example``: each section's variables under its heading, each with its comment."""
    lines = [
        "# slack-analyst configuration. Copy to .env and fill in; real environment variables win.",
        f"# This file is {GENERATED_BY}; edit the settings there.",
    ]
    section = None
    for setting in grouped(settings):
        if setting.section != section:
            section = setting.section
            lines += ["", f"# --- {section} ---"]
        note = setting.doc.replace("`", "") if setting.note is None else setting.note
        lines += textwrap.wrap(note, COMMENT_WIDTH, initial_indent="# ", subsequent_indent="# ")
        value = plain(setting.default) if setting.example is None else setting.example
        lines.append(f"{'' if setting.active else '# '}{setting.env}={value}")
    return "\n".join(lines) + "\n"


def replace_between(text: str, begin: str, end: str, content: str) -> str:
    """``text`` with what lies between the lines ``begin`` and ``end`` replaced by ``content``."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == begin]
    ends = [i for i, line in enumerate(lines) if line.strip() == end]
    if len(starts) != 1 or len(ends) != 1 or starts[0] > ends[0]:
        raise ValueError(f"expected one {begin} line followed by one {end} line")
    return "".join([*lines[: starts[0] + 1], content, *lines[ends[0] :]])


def readme_section(settings: Sequence[Setting[Any]] = SETTINGS) -> str:
    """What goes between README's settings markers."""
    return f"<!-- {GENERATED_BY}; edit the settings there -->\n" + markdown_table(settings)


def generated(root: Path) -> dict[Path, str]:
    """Each generated file under ``root`` with the text it should hold."""
    readme = root / "README.md"
    return {
        readme: replace_between(readme.read_text(encoding="utf-8"), README_BEGIN, README_END, readme_section()),
        root / ".env.example": env_example(),
    }


def main(argv: Sequence[str] | None = None, *, root: Path | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/settings-docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    root = Path.cwd() if root is None else root
    files = generated(root)
    stale = [path for path, text in files.items() if not path.exists() or path.read_text(encoding="utf-8") != text]
    for path in stale:
        if args.check:
            print(f"{path.relative_to(root)} is out of date: run scripts/settings-docs", file=sys.stderr)
        else:
            path.write_text(files[path], encoding="utf-8")
            print(f"rewrote {path.relative_to(root)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
