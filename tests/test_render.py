"""Rendering Claude's Markdown for Slack: tables, splitting, neutralising."""

from bot.sanitize import ZWSP
from handlers.slack.render import (
    MARKDOWN_BLOCK_LIMIT,
    answer_messages,
    code_listing,
    split_markdown,
    tables_to_monospace,
    title_from_filename,
)

TABLE = """## Churn by tier

| Tier | Churn | Users |
|------|------:|------:|
| Free | **45.1%** | 2,010 |
| Premium | 8.0% | 990 |

Done."""


def test_tables_become_aligned_monospace() -> None:
    out = tables_to_monospace(TABLE)
    assert "|" not in out
    lines = out.splitlines()
    start = lines.index("```")
    assert lines[start + 1].split() == ["Tier", "Churn", "Users"]
    assert lines[start + 3] == "Free     45.1%  2,010"
    assert lines[start + 4] == "Premium   8.0%    990"
    assert out.startswith("## Churn by tier") and out.endswith("Done.")


def test_tables_inside_code_blocks_are_left_alone() -> None:
    text = "```\n| a | b |\n|---|---|\n| 1 | 2 |\n```"
    assert tables_to_monospace(text) == text


def test_short_answers_are_one_message_with_a_markdown_block() -> None:
    [message] = answer_messages("# Findings\n\n- **Free** churns most")
    assert message.blocks == [{"type": "markdown", "text": "# Findings\n\n- **Free** churns most"}]
    assert message.text == "Findings\n\n- Free churns most"


def test_long_answers_split_within_the_block_limit_at_paragraphs() -> None:
    paragraphs = [f"Paragraph {i}: " + "word " * 150 for i in range(60)]
    messages = answer_messages("\n\n".join(paragraphs))
    assert len(messages) > 1
    for index, message in enumerate(messages):
        text = message.blocks[0]["text"]
        assert len(text) <= MARKDOWN_BLOCK_LIMIT
        assert text.endswith(f"_({index + 1}/{len(messages)})_")
        assert len(message.text) <= 3000
    joined = "\n\n".join(m.blocks[0]["text"] for m in messages)
    for paragraph in paragraphs:
        assert paragraph.strip() in joined  # no paragraph was cut in half


def test_a_code_block_cut_across_messages_is_closed_and_reopened() -> None:
    code = "```python\n" + "\n".join(f"x{i} = {i}" for i in range(3000)) + "\n```"
    pieces = split_markdown(code, budget=5000)
    assert len(pieces) > 1
    for piece in pieces:
        assert piece.count("```") % 2 == 0, piece[:80]
        assert len(piece) <= 5000


def test_a_single_enormous_line_is_hard_wrapped() -> None:
    pieces = split_markdown("y" * 30_000, budget=11_000)
    assert all(len(p) <= 11_000 for p in pieces)
    assert "".join(pieces) == "y" * 30_000


def test_answers_cannot_ping_anyone() -> None:
    [message] = answer_messages("Tell <!channel> and <@U123> — @here")
    text = message.blocks[0]["text"]
    assert "<!channel>" not in text and "<@U123>" not in text and "@here" not in text
    assert text.replace(ZWSP, "") == "Tell <!channel> and <@U123> — @here"


def test_notes_are_appended_in_italics() -> None:
    [message] = answer_messages("Answer.", ("It was cut off.",))
    assert message.blocks[0]["text"] == "Answer.\n\n_It was cut off._"


def test_titles_and_code_listing() -> None:
    assert title_from_filename("churn_by_tier.png") == "Churn by tier"
    listing = code_listing([(1, "python", "import pandas as pd\n"), (2, "bash", "python3 a.py\nls")])
    assert "# --- step 1 ---\nimport pandas as pd" in listing
    assert "# --- step 2 (shell) ---\n# $ python3 a.py\n# $ ls" in listing


def test_halving_history_keeps_the_newest_exchanges() -> None:
    from bot.conversation import SHORTENED_NOTE, halved

    history = []
    for i in range(4):
        history += [
            {"role": "user", "content": [{"type": "text", "text": f"q{i}"}]},
            {"role": "assistant", "content": [{"type": "text", "text": f"a{i}"}]},
        ]
    kept = halved(history)
    assert [b["text"] for m in kept for b in m["content"]] == [SHORTENED_NOTE, "q2", "a2", "q3", "a3"]
    assert halved(kept[:2]) == []
