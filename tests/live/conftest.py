"""The live smoke suite: the real bot against a real Slack workspace and the real Anthropic API.

Never part of the default run (pyproject deselects the ``live`` marker); ``pytest -m live``
runs it, and skips it unless every variable in :data:`LIVE_VARIABLES` is set.
"""

from __future__ import annotations

import os

import pytest

#: What the suite needs (README → Live smoke suite says where each comes from).
LIVE_VARIABLES = (
    "LIVE_SLACK_BOT_TOKEN",  # the test app's Bot User OAuth Token, xoxb-…
    "LIVE_SLACK_APP_TOKEN",  # its app-level token with connections:write, xapp-… (the bot runs in Socket Mode)
    "LIVE_SLACK_USER_TOKEN",  # a person's user token, xoxp-…, to post and read as them
    "LIVE_SLACK_CHANNEL",  # a channel id both the bot and that person are in, C…
    "ANTHROPIC_API_KEY",
)


@pytest.fixture
def live_env() -> dict[str, str]:
    missing = [name for name in LIVE_VARIABLES if not os.environ.get(name, "").strip()]
    if missing:
        pytest.skip(f"live smoke suite: set {', '.join(missing)} (README → Live smoke suite)")
    return {name: os.environ[name].strip() for name in LIVE_VARIABLES}
