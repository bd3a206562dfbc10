"""Slack event payloads → analysis requests."""

from handlers.slack.payloads import request_from_mention, request_from_message

FILE = {
    "id": "F1",
    "name": "streaming.csv",
    "mimetype": "text/csv",
    "filetype": "csv",
    "size": 123,
    "url_private_download": "https://files.slack.com/x",
}


def mention(**extra: object) -> dict[str, object]:
    return {
        "type": "app_mention",
        "user": "U0ALICE",
        "channel": "C0DATA",
        "ts": "10.1",
        "text": "<@UBOT> why?",
        **extra,
    }


def test_mention_replies_in_its_own_thread() -> None:
    request = request_from_mention(mention(files=[FILE]), team_id="T1", bot_user_id="UBOT", event_id="Ev1")
    assert request is not None
    assert (request.channel_id, request.thread_ts, request.message_ts) == ("C0DATA", "10.1", "10.1")
    assert request.files[0].name == "streaming.csv" and request.files[0].complete
    assert request.event_id == "Ev1"


def test_mention_inside_a_thread_replies_in_that_thread() -> None:
    request = request_from_mention(mention(thread_ts="9.0"), team_id="T1", bot_user_id="UBOT")
    assert request is not None and request.thread_ts == "9.0"


def test_file_share_mentioning_the_bot_is_the_same_request_as_the_mention() -> None:
    message = {**mention(files=[FILE]), "type": "message", "subtype": "file_share", "channel_type": "channel"}
    from_message = request_from_message(message, team_id="T1", bot_user_id="UBOT")
    from_mention = request_from_mention(mention(files=[FILE]), team_id="T1", bot_user_id="UBOT")
    assert from_message is not None and from_mention is not None
    assert from_message.dedupe_key == from_mention.dedupe_key


def test_messages_that_are_not_for_the_bot_are_ignored() -> None:
    plain = {**mention(), "type": "message"}
    no_mention = {**plain, "subtype": "file_share", "text": "here is a file", "files": [FILE]}
    edited = {**plain, "subtype": "message_changed"}
    for event in (plain, no_mention, edited):
        assert request_from_message(event, team_id="T1", bot_user_id="UBOT") is None


def test_bots_are_ignored() -> None:
    assert request_from_mention(mention(bot_id="B2"), team_id="T1", bot_user_id="UBOT") is None
    assert request_from_mention(mention(user="UBOT"), team_id="T1", bot_user_id="UBOT") is None
    bot_share = {**mention(files=[FILE]), "type": "message", "subtype": "file_share", "bot_id": "B2"}
    assert request_from_message(bot_share, team_id="T1", bot_user_id="UBOT") is None


def test_partial_file_objects_are_marked_incomplete() -> None:
    request = request_from_mention(
        mention(files=[{"id": "F9", "file_access": "check_file_info"}]), team_id="T1", bot_user_id="UBOT"
    )
    assert request is not None and not request.files[0].complete
