"""Question cleaning (inbound) and neutralisation (outbound)."""

from bot.sanitize import ZWSP, clean_question, mentions_user, neutralize, redact_secrets


def test_bot_mention_is_removed_and_other_markup_made_plain() -> None:
    cleaned = clean_question(
        "<@UBOT> what drives churn &amp; retention for <@U0BOB>'s team in <#C0DATA|data>? "
        "see <https://example.com/doc|the doc> and <mailto:a@b.co|a@b.co>",
        bot_user_id="UBOT",
        user_names={"U0BOB": "bob"},
    )
    assert cleaned.text == (
        "what drives churn & retention for @bob's team in #data? see the doc (https://example.com/doc) and a@b.co"
    )
    assert not cleaned.truncated


def test_unknown_mentions_and_broadcasts_vanish() -> None:
    assert clean_question("<@UBOT> hi <@U999> <!here> <!subteam^S1|@analysts>", bot_user_id="UBOT").text == (
        "hi analysts"
    )


def test_invisible_and_bidi_characters_are_dropped() -> None:
    text = "<@UBOT> sum\u202e of \u200bprice\u2066s\x00\x07 please"
    assert clean_question(text, bot_user_id="UBOT").text == "sum of prices please"


def test_long_questions_are_capped_with_a_flag() -> None:
    cleaned = clean_question("x" * 10_000, max_chars=4_000)
    assert len(cleaned.text) == 4_000
    assert cleaned.truncated


def test_mention_detection() -> None:
    assert mentions_user("hey <@UBOT> look", "UBOT")
    assert mentions_user("hey <@UBOT|analyst> look", "UBOT")
    assert not mentions_user("hey <@UBOTX> look", "UBOT")


def test_neutralize_makes_mentions_inert_but_visible() -> None:
    out = neutralize("Alert <!channel> and <!here>, ping <@U123> in <#C9> and <!subteam^S1> @channel @Here")
    for raw in ("<!channel>", "<!here>", "<@U123>", "<#C9>", "<!subteam^S1>", "@channel", "@Here"):
        assert raw not in out
    assert out.replace(ZWSP, "") == (
        "Alert <!channel> and <!here>, ping <@U123> in <#C9> and <!subteam^S1> @channel @Here"
    )


def test_secrets_are_redacted() -> None:
    text = (
        "token xoxb-1234567890-abcdefghij and xapp-1-A1B2C3D4E5 key sk-ant-api03-abcdefghijklmnop "
        "aws AKIAABCDEFGHIJKLMNOP auth: Bearer abcdefghijklmnopqrstuvwxyz012345 "
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"
    )
    out = redact_secrets(text)
    for secret in (
        "xoxb-1234567890",
        "xapp-1-A1B2",
        "sk-ant-api03",
        "AKIAABCDEFGHIJKLMNOP",
        "abcdefghijklmnopqrstuvwxyz012345",
        "MIIEow",
    ):
        assert secret not in out
    assert out.count("[redacted") == 6
