"""Which files the analyst can read, decided before and after download. Pure functions.

Before download only the name, Slack's type and the claimed size are known
(:func:`precheck`); after download the first bytes tell what the file really is
(:func:`sniff`), so a binary file named ``.csv`` is refused before it reaches Anthropic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from bot.sanitize import neutralize, strip_invisible


@dataclass(frozen=True)
class Kind:
    """A family of files code execution can read."""

    name: str
    extensions: tuple[str, ...]
    mime_type: str
    text: bool  # read as text (must decode) rather than a binary container


KINDS: tuple[Kind, ...] = (
    Kind("CSV", ("csv",), "text/csv", text=True),
    Kind("TSV", ("tsv", "tab"), "text/tab-separated-values", text=True),
    Kind("Excel", ("xlsx", "xlsm"), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", False),
    Kind("Excel 97-2003", ("xls",), "application/vnd.ms-excel", text=False),
    Kind("JSON", ("json", "jsonl", "ndjson", "geojson"), "application/json", text=True),
    Kind("XML", ("xml",), "application/xml", text=True),
    Kind("Parquet", ("parquet",), "application/vnd.apache.parquet", text=False),
    Kind("text", ("txt", "log", "md", "yaml", "yml", "sql"), "text/plain", text=True),
    Kind("PDF", ("pdf",), "application/pdf", text=False),
    Kind("image", ("png", "jpg", "jpeg", "gif", "webp"), "image/png", text=False),
)

_BY_EXTENSION = {ext: kind for kind in KINDS for ext in kind.extensions}
_IMAGE_MIME = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
}

ACCEPTED_DESCRIPTION = "CSV, TSV, Excel (.xlsx/.xls), JSON, XML, Parquet, text/log, PDF and images (PNG, JPG, GIF)"


def display_name(name: str, limit: int = 120) -> str:
    """A person-supplied file name as it may appear in the bot's own messages: no
    invisible characters, no pings, no markup that would break the surrounding bold."""
    shown = neutralize(strip_invisible(name)).replace("*", "∗").replace("`", "'").strip()
    return (shown[: limit - 1] + "…" if len(shown) > limit else shown) or "(unnamed file)"


class FileRefused(Exception):
    """A file the analyst will not take. ``str(error)`` is the sentence for the person."""


def extension(name: str) -> str:
    return PurePosixPath(name).suffix.lower().lstrip(".")


def kind_for(name: str, filetype: str = "") -> Kind | None:
    """The kind a file claims to be: by its extension, or Slack's ``filetype`` when the
    name has none (an unknown extension is never rescued by what ``filetype`` says)."""
    if extension(name):
        return _BY_EXTENSION.get(extension(name))
    return _BY_EXTENSION.get(filetype.lower())


def mime_type_for(name: str, kind: Kind) -> str:
    return _IMAGE_MIME.get(extension(name), kind.mime_type) if kind.name == "image" else kind.mime_type


def describe_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


def precheck(name: str, filetype: str, size: int | None, max_bytes: int) -> Kind:
    """Refuse, before any download, a file that is too large or of a type we can't read."""
    kind = kind_for(name, filetype)
    if kind is None:
        shown = display_name(f".{extension(name)}" if extension(name) else (filetype or "this type"), limit=20)
        raise FileRefused(f"I can't analyse *{display_name(name)}* ({shown} files). I can read {ACCEPTED_DESCRIPTION}.")
    if size is not None and size > max_bytes:
        raise FileRefused(
            f"*{display_name(name)}* is {describe_size(size)}, over this workspace's limit of "
            f"{describe_size(max_bytes)}. Share a smaller extract (a sample or a filtered export)."
        )
    if size == 0:
        raise FileRefused(f"*{display_name(name)}* is empty, so there is nothing to analyse.")
    return kind


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"PK\x03\x04", "zip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"),
    (b"PAR1", "parquet"),
    (b"\x1f\x8b", "gzip"),
    (b"\x7fELF", "elf"),
    (b"MZ", "exe"),
)

_EXPECTED_MAGIC = {
    "Excel": {"zip"},
    "Excel 97-2003": {"ole", "zip"},
    "Parquet": {"parquet"},
    "PDF": {"pdf"},
    "image": {"png", "jpeg", "gif", "webp"},
}


def magic_of(head: bytes) -> str | None:
    for prefix, name in _MAGIC:
        if head.startswith(prefix):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    for encoding in ("utf-8", "utf-16"):
        try:
            head.decode(encoding)
            return True
        except UnicodeDecodeError as error:
            # A multi-byte character cut at the end of the sample is still text.
            if encoding == "utf-8" and error.start >= len(head) - 3:
                return True
    try:
        decoded = head.decode("cp1252")
    except UnicodeDecodeError:
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in decoded)
    return printable >= 0.95 * max(len(decoded), 1)


def sniff(name: str, kind: Kind, head: bytes) -> None:
    """Check the first bytes of a downloaded file agree with the kind its name claims."""
    if not head:
        raise FileRefused(f"*{display_name(name)}* is empty, so there is nothing to analyse.")
    magic = magic_of(head)
    if kind.text:
        if magic is not None or not _looks_like_text(head):
            raise FileRefused(
                f"*{display_name(name)}* is named like a {kind.name} file but its contents are binary"
                f"{f' ({magic})' if magic else ''}. Export it again as plain {kind.name}."
            )
        return
    expected = _EXPECTED_MAGIC.get(kind.name, set())
    if magic not in expected:
        raise FileRefused(
            f"*{display_name(name)}* is named like a {kind.name} file but its contents are not. "
            "Check the export and share it again."
        )


_UNSAFE_NAME_CHARS = re.compile(r"[^\w.\- ()\[\]+,=]", re.UNICODE)


def safe_filename(name: str, *, fallback: str = "data", max_length: int = 120) -> str:
    """A file name with no path parts, control characters or leading dots, of bounded length."""
    base = strip_invisible(name).replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable())
    base = _UNSAFE_NAME_CHARS.sub("_", base).strip().lstrip(".").strip()
    if not base or base.strip("._ ") == "":
        base = fallback
    if len(base) <= max_length:
        return base
    stem, dot, ext = base.rpartition(".")
    if dot and 0 < len(ext) <= 10:
        return stem[: max_length - len(ext) - 1] + "." + ext
    return base[:max_length]
