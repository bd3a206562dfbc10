"""The column names of a shared table, read from its first bytes. Pure functions.

Intake already holds a file's first bytes (for type sniffing), so a CSV's or TSV's header
costs nothing more to read: the surface uses the names to suggest questions about *this*
table. Only the header row is read (quoted fields, a byte-order mark, ``;``/``|``/tab
delimiters and Windows encodings included); a header cut off by the end of the sample, or
a first row of numbers, yields no columns rather than wrong ones.
"""

from __future__ import annotations

import codecs
import csv
import io
import re

from bot.sanitize import strip_invisible

MAX_COLUMNS = 200
MAX_NAME_CHARS = 60
DELIMITERS = (",", ";", "\t", "|")
_NUMBER = re.compile(r"^[+-]?(\d[\d,]*)?(\.\d+)?([eE][+-]?\d+)?%?$")


def decode_head(head: bytes) -> str | None:
    """The sample as text: UTF-8 (with or without a BOM), UTF-16 with a BOM, else cp1252."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if head.startswith(bom):
            return head[len(bom) :].decode(encoding, errors="ignore")
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start >= len(head) - 3:  # a character cut at the end of the sample
            return head[: error.start].decode("utf-8")
    try:
        return head.decode("cp1252")
    except UnicodeDecodeError:
        return None


def _first_line(text: str) -> str:
    """The header line: up to the first line break outside quotes."""
    quoted = False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char in "\r\n" and not quoted:
            return text[:index]
    return text if not quoted else ""


def guess_delimiter(line: str) -> str:
    """The delimiter that splits the header line most often (outside quotes); ``,`` on a tie."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def header_columns(head: bytes, kind: str) -> tuple[str, ...]:
    """The column names of a CSV or TSV file from its first bytes; ``()`` for any other
    kind, or when the header can't be read with confidence."""
    if kind not in ("CSV", "TSV"):
        return ()
    text = decode_head(head)
    if not text:
        return ()
    line = _first_line(text)
    if not line or (line == text and len(head) >= 4096):  # no line break in a large sample: a cut header
        return ()
    delimiter = "\t" if kind == "TSV" else guess_delimiter(line)
    try:
        row = next(csv.reader(io.StringIO(line), delimiter=delimiter))
    except (csv.Error, StopIteration):
        return ()
    names = [clean_name(cell) for cell in row]
    if len(row) < 2 or not any(names) or all(_NUMBER.match(name) for name in names if name):
        return ()  # one column is no table to suggest about; a numeric first row is data, not a header
    return tuple(dict.fromkeys(name for name in names if name))[:MAX_COLUMNS]


def clean_name(cell: str) -> str:
    """A column name as it may be shown: no invisible or control characters, no backticks,
    whitespace collapsed, bounded length."""
    name = "".join(ch if ch.isprintable() else " " for ch in strip_invisible(cell)).replace("`", "'")
    name = " ".join(name.split())
    return name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 1] + "…"
