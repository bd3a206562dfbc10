"""File acceptance: before download by name and size, after by content."""

import pytest

from bot.filetypes import FileRefused, kind_for, precheck, safe_filename, sniff

MB = 1024 * 1024


def test_accepted_types() -> None:
    for name in (
        "a.csv",
        "b.TSV",
        "c.xlsx",
        "d.xls",
        "e.json",
        "f.xml",
        "g.parquet",
        "h.txt",
        "i.log",
        "j.pdf",
        "k.png",
    ):
        assert kind_for(name) is not None, name
    assert kind_for("noext", "csv") is not None


def test_unsupported_type_is_refused_with_the_accepted_list() -> None:
    with pytest.raises(FileRefused) as caught:
        precheck("deck.pptx", "pptx", 1000, 100 * MB)
    assert "deck.pptx" in str(caught.value)
    assert "CSV" in str(caught.value) and "Excel" in str(caught.value)


def test_too_large_is_refused_before_download() -> None:
    with pytest.raises(FileRefused, match=r"150\.0 MB.*100\.0 MB"):
        precheck("big.csv", "csv", 150 * MB, 100 * MB)


def test_empty_file_is_refused() -> None:
    with pytest.raises(FileRefused, match="empty"):
        precheck("e.csv", "csv", 0, MB)
    with pytest.raises(FileRefused, match="empty"):
        sniff("e.csv", precheck("e.csv", "csv", None, MB), b"")


def test_binary_named_csv_is_refused() -> None:
    kind = precheck("x.csv", "csv", 100, MB)
    with pytest.raises(FileRefused, match="binary"):
        sniff("x.csv", kind, b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(FileRefused, match="binary"):
        sniff("x.csv", kind, bytes(range(256)))
    sniff("x.csv", kind, "a,b\n1,é\n".encode())
    sniff("x.csv", kind, "a,b\n1,é\n".encode("cp1252"))


def test_xlsx_must_be_a_zip() -> None:
    kind = precheck("x.xlsx", "xlsx", 100, MB)
    sniff("x.xlsx", kind, b"PK\x03\x04rest")
    with pytest.raises(FileRefused):
        sniff("x.xlsx", kind, b"a,b,c\n")


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        (".hidden.csv", "hidden.csv"),
        ("ok\x00\x1bname.csv", "okname.csv"),
        ("....", "data"),
        ("", "data"),
        ("sales (2024) Q1.csv", "sales (2024) Q1.csv"),
    ],
)
def test_safe_filename(raw: str, safe: str) -> None:
    assert safe_filename(raw) == safe


def test_safe_filename_caps_length_but_keeps_extension() -> None:
    name = safe_filename("x" * 500 + ".csv")
    assert len(name) == 120 and name.endswith(".csv")
