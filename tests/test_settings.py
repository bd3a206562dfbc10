"""Settings: every variable parsed once, bad values named in one line."""

from pathlib import Path

import pytest

from bot.settings import CODE_EXECUTION_TOOLS, DEFAULT_MODEL, Settings, SettingsError

BASE = {"ANTHROPIC_API_KEY": "sk-ant-x", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}


def test_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.db_path == Path("./data/analyst.db")
    assert settings.db_pool_size == 10
    assert settings.model == DEFAULT_MODEL
    assert settings.code_execution.type == "code_execution_20260521"
    assert settings.code_execution.beta is None
    assert settings.max_file_bytes == 100 * 1024 * 1024
    assert not settings.socket_mode


@pytest.mark.parametrize("version", ["20250522", "code_execution_20250522"])
def test_python_only_tool_needs_its_beta_header(version: str) -> None:
    settings = Settings.from_env({**BASE, "ANALYST_CODE_EXECUTION": version})
    assert settings.code_execution.type == "code_execution_20250522"
    assert settings.code_execution.beta == "code-execution-2025-05-22"


def test_every_bash_version_is_accepted_without_beta() -> None:
    for version in ("20250825", "20260120", "20260521"):
        tool = Settings.from_env({**BASE, "ANALYST_CODE_EXECUTION": version}).code_execution
        assert tool.type in CODE_EXECUTION_TOOLS and tool.beta is None


def test_api_url_gets_a_trailing_slash() -> None:
    assert Settings.from_env({**BASE, "SLACK_API_URL": "http://127.0.0.1:9/api"}).slack_api_url.endswith("/api/")


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"ANTHROPIC_API_KEY": ""}, "ANTHROPIC_API_KEY"),
        ({"SLACK_BOT_TOKEN": ""}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xapp-wrong-kind"}, "SLACK_BOT_TOKEN"),
        ({"SLACK_APP_TOKEN": "xoxb-wrong-kind"}, "SLACK_APP_TOKEN"),
        ({"SLACK_API_URL": "slack.com/api"}, "SLACK_API_URL"),
        ({"ANTHROPIC_BASE_URL": "ftp://x"}, "ANTHROPIC_BASE_URL"),
        ({"ANALYST_MAX_FILE_MB": "lots"}, "ANALYST_MAX_FILE_MB"),
        ({"ANALYST_MAX_FILE_MB": "-5"}, "ANALYST_MAX_FILE_MB"),
        ({"ANALYST_MAX_FILE_MB": "nan"}, "ANALYST_MAX_FILE_MB"),
        ({"ANALYST_CODE_EXECUTION": "20991231"}, "ANALYST_CODE_EXECUTION"),
        ({"ANALYST_MAX_TOKENS": "1.5"}, "ANALYST_MAX_TOKENS"),
        ({"ANALYST_DB_POOL_SIZE": "1"}, "ANALYST_DB_POOL_SIZE"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**BASE, **env})
    assert caught.value.name == name
    assert str(caught.value).startswith(f"{name}: ")
    assert "\n" not in str(caught.value)


def test_http_mode_needs_the_signing_secret() -> None:
    env = {**BASE, "SLACK_SIGNING_SECRET": ""}
    with pytest.raises(SettingsError, match="SLACK_SIGNING_SECRET"):
        Settings.from_env(env, http=True)
    assert Settings.from_env({**env, "SLACK_APP_TOKEN": "xapp-1"}).socket_mode


def test_terminal_use_needs_no_slack_credentials() -> None:
    settings = Settings.from_env({"ANTHROPIC_API_KEY": "sk-ant-x"}, slack=False)
    assert settings.slack_bot_token is None


def test_the_concurrency_ceiling_is_adaptive_unless_a_whole_number_is_given() -> None:
    assert Settings.from_env(BASE).max_concurrent is None
    assert Settings.from_env({**BASE, "ANALYST_MAX_CONCURRENT": "Adaptive"}).max_concurrent is None
    assert Settings.from_env({**BASE, "ANALYST_MAX_CONCURRENT": "2"}).max_concurrent == 2
    for bad in ("0", "lots", "2.5"):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({**BASE, "ANALYST_MAX_CONCURRENT": bad})
        assert (
            str(caught.value)
            == f"ANALYST_MAX_CONCURRENT: should be adaptive or a whole number of at least 1, got {bad!r}"
        )


def test_the_database_is_a_file_or_a_postgresql_url_and_a_bad_url_is_not_echoed() -> None:
    url = "postgresql://bot:s3cret@db.internal:5432/analyst"
    assert Settings.from_env({**BASE, "ANALYST_DB": url}).db_path == url
    assert Settings.from_env({**BASE, "ANALYST_DB": "postgres://bot@db/analyst"}).db_path == "postgres://bot@db/analyst"
    assert Settings.from_env({**BASE, "ANALYST_DB": "/data/analyst.db"}).db_path == Path("/data/analyst.db")
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**BASE, "ANALYST_DB": "mysql://bot:s3cret@db/analyst"})
    assert str(refused.value) == (
        "ANALYST_DB: should be an SQLite file path or a postgresql:// URL (another scheme was given)"
    )
