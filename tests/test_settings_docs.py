"""The settings' declarations are the single source: README's table and .env.example are
generated from them and must not drift; the declarations themselves hang together."""

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

import bot.settings
from bot import cli
from bot.settings import (
    ANALYST_LOG_LEVEL,
    CODE_EXECUTION_TOOLS,
    PORT,
    SECTIONS,
    SETTINGS,
    Setting,
    Settings,
    SettingsError,
    declared,
)
from bot.settings_docs import (
    COMMENT_WIDTH,
    README_BEGIN,
    README_END,
    env_example,
    generated,
    main,
    markdown_table,
    plain,
    replace_between,
    shown_default,
)

REPO = Path(__file__).resolve().parents[1]


def _setting(env: str = "ANALYST_X", default: Any = 1, **extra: Any) -> Setting[Any]:
    return Setting(env, default, int, **{"doc": "Some `value`.", "section": SECTIONS[0], **extra})


# ---------------------------------------------------------------------------------- no drift


@pytest.mark.parametrize("name", ["README.md", ".env.example"])
def test_generated_files_match_the_declarations(name: str) -> None:
    expected = generated(REPO)[REPO / name]
    assert (REPO / name).read_text(encoding="utf-8") == expected, f"{name} is out of date: run scripts/settings-docs"


def test_check_names_a_drifted_file_and_a_rewrite_fixes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (tmp_path / "README.md").write_text(
        readme.replace("| `ANALYST_MAX_FILE_MB` | `100` |", "| `ANALYST_MAX_FILE_MB` | `10` |")
    )
    (tmp_path / ".env.example").write_text((REPO / ".env.example").read_text(encoding="utf-8"))

    assert main(["--check"], root=tmp_path) == 1
    assert capsys.readouterr().err == "README.md is out of date: run scripts/settings-docs\n"
    assert "| `ANALYST_MAX_FILE_MB` | `10` |" in (tmp_path / "README.md").read_text()  # --check changes nothing

    assert main([], root=tmp_path) == 0
    assert (tmp_path / "README.md").read_text() == readme
    assert main(["--check"], root=tmp_path) == 0


def test_a_missing_env_example_is_written(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(f"# Title\n{README_BEGIN}\nold\n{README_END}\nAfter.\n")
    assert main(["--check"], root=tmp_path) == 1
    assert main([], root=tmp_path) == 0
    assert (tmp_path / ".env.example").read_text() == env_example()
    assert (tmp_path / "README.md").read_text().endswith(markdown_table() + f"{README_END}\nAfter.\n")


# ---------------------------------------------------------------------------------- the generator


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (None, ""),
        (False, "false"),
        (True, "true"),
        (100.0, "100"),
        (0.5, "0.5"),
        (32000, "32000"),
        (Path("./data/analyst.db"), "./data/analyst.db"),
        (Path("/var/lib/analyst.db"), "/var/lib/analyst.db"),
        (CODE_EXECUTION_TOOLS["code_execution_20250825"], "20250825"),
        ((), ""),
        (("xlsx", "pdf"), "xlsx,pdf"),
        (frozenset({"U2", "U1"}), "U1,U2"),
        ("https://slack.com/api/", "https://slack.com/api/"),
    ],
)
def test_defaults_are_written_as_they_would_be_in_env(value: object, written: str) -> None:
    assert plain(value) == written


def test_readme_default_cell() -> None:
    assert shown_default(_setting(default=24.0)) == "`24`"
    assert shown_default(_setting(default=None)) == "—"
    assert shown_default(_setting(default=frozenset())) == "—"
    assert shown_default(_setting(default="", required=True)) == "— (required)"
    assert shown_default(_setting(default=None, required="slack")) == "— (required)"
    assert shown_default(_setting(default=0, shown_default="`0` (off)")) == "`0` (off)"


def test_table_has_one_row_per_variable_grouped_by_section() -> None:
    table = markdown_table(
        [
            _setting("ANALYST_LATE", section=SECTIONS[1], doc="Second section."),
            _setting("ANALYST_EARLY", 2.0, doc="First `section`."),
        ]
    )
    assert table == (
        "| Variable | Default | Meaning |\n"
        "| --- | --- | --- |\n"
        "| `ANALYST_EARLY` | `2` | First `section`. |\n"
        "| `ANALYST_LATE` | `1` | Second section. |\n"
    )


@pytest.mark.parametrize("doc", ["a | b", "two\nlines"])
def test_table_refuses_text_that_would_break_it(doc: str) -> None:
    with pytest.raises(ValueError, match="ANALYST_X"):
        markdown_table([_setting(doc=doc)])


def test_env_example_lists_each_section_once_with_comments_and_values() -> None:
    text = env_example(
        [
            _setting("ANALYST_B", section=SECTIONS[1], note=""),
            _setting("TOKEN", None, required=True, example="xoxb-fill-me", active=True, note="Fill this in."),
            _setting("ANALYST_A", 24.0, section=SECTIONS[1]),
            _setting("ANALYST_LONG", note="word " * 40),
        ]
    )
    body = text.split("\n\n", 1)[1]
    # An active setting is set to its example; the others are shown commented out, with their default.
    assert body.startswith(f"# --- {SECTIONS[0]} ---\n# Fill this in.\nTOKEN=xoxb-fill-me\n")
    # note="" writes no comment; no note writes the README text without Markdown.
    assert text.endswith(f"\n\n# --- {SECTIONS[1]} ---\n# ANALYST_B=1\n# Some value.\n# ANALYST_A=24\n")
    long_comment = [line for line in text.splitlines() if line.startswith("# word")]
    assert len(long_comment) > 1 and all(len(line) <= COMMENT_WIDTH for line in long_comment)


def test_replace_between_replaces_only_the_marked_lines() -> None:
    text = f"before\n{README_BEGIN}\nold\nrows\n{README_END}\nafter\n"
    assert (
        replace_between(text, README_BEGIN, README_END, "new\n")
        == f"before\n{README_BEGIN}\nnew\n{README_END}\nafter\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        "no markers\n",
        f"{README_BEGIN}\nonly the start\n",
        f"{README_END}\n{README_BEGIN}\n",
        f"{README_BEGIN}\n" * 2 + README_END,
    ],
)
def test_replace_between_refuses_missing_or_muddled_markers(text: str) -> None:
    with pytest.raises(ValueError, match="settings:begin"):
        replace_between(text, README_BEGIN, README_END, "new\n")


# ---------------------------------------------------------------------------------- the declarations


def test_every_setting_is_declared_once_in_a_known_section() -> None:
    assert all(isinstance(item.metadata.get("setting"), Setting) for item in fields(Settings))
    assert all(getattr(bot.settings, setting.env) is setting for setting in SETTINGS)  # named after its variable
    names = [setting.env for setting in SETTINGS]
    assert len(names) == len(set(names))
    assert {setting.section for setting in SETTINGS} <= set(SECTIONS)


@pytest.mark.parametrize("setting", [s for s in SETTINGS if not s.required and plain(s.default)], ids=lambda s: s.env)
def test_a_default_written_out_reads_back_as_the_default(setting: Setting[Any]) -> None:
    """What README and .env.example show as the default is what leaving the variable unset means."""
    assert setting.read({setting.env: plain(setting.default)}) == setting.default


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.example], ids=lambda s: s.env)
def test_every_example_value_is_accepted(setting: Setting[Any]) -> None:
    setting.read({setting.env: setting.example or ""})


def test_unset_variables_mean_their_declared_defaults() -> None:
    settings = Settings.from_env({"ANTHROPIC_API_KEY": "sk-ant-x"}, slack=False)
    for item in fields(Settings):
        if not declared(item).required:
            assert getattr(settings, item.name) == declared(item).default, item.name


def test_the_command_line_reads_its_settings_as_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    """ANALYST_LOG_LEVEL and PORT are read by bot/cli.py; its defaults and errors match their declarations."""
    monkeypatch.delenv(ANALYST_LOG_LEVEL.env, raising=False)
    monkeypatch.delenv(PORT.env, raising=False)
    assert cli.build_parser().parse_args(["serve"]).log_level == ANALYST_LOG_LEVEL.default
    assert cli._port_from_env() == PORT.default
    for bad in ("http", "70000", "-1"):
        monkeypatch.setenv(PORT.env, bad)
        with pytest.raises(SettingsError) as from_cli:
            cli._port_from_env()
        with pytest.raises(SettingsError) as declared_error:
            PORT.read({PORT.env: bad})
        assert str(from_cli.value) == str(declared_error.value)
