"""Estimated cost of a run: the one table of list prices, kept here only.

US dollars per million tokens, as listed on the pricing page
(https://platform.claude.com/docs/en/about-claude/pricing, "Model pricing") and each model's
overview page (https://platform.claude.com/docs/en/models/<model>/overview, "Pricing"), read
2026-12-05. Where a row rests on something else, its comment says so.

- Cache writes: the bot writes 5-minute entries only, billed at 1.25× the input price
  (pricing page, "Prompt caching": "5-minute cache write tokens are 1.25 times the base
  input tokens price"; 1-hour writes, 2×, are not used).
- Cache reads ("cache hits and refreshes") are priced per model: 0.1× input for most,
  less for the newest models, so the table lists them rather than a multiplier.
- Web search: $10 per 1,000 searches on top of tokens (pricing page, "Web search tool"
  and agents-and-tools/tool-use/web-search-tool, "Usage and pricing"); web fetch costs
  tokens only ("Web fetch tool": "no additional charges beyond standard token costs").
- Code-execution container time is not included.
"""

from __future__ import annotations

from dataclasses import dataclass

#: 5-minute cache writes cost this much more than plain input (pricing page, "Prompt caching").
CACHE_WRITE_FACTOR = 1.25
#: Web search, per search (pricing page: "$10 per 1,000 searches").
WEB_SEARCH_PER_SEARCH = 10.0 / 1000

# (model id prefix, input, output, cache read) in $ per million tokens. The longest matching
# prefix wins; the last entry is the fallback for unknown models (priced as the default model).
PRICES_PER_MTOK: tuple[tuple[str, float, float, float], ...] = (
    # Fable / Mythos 5.2: $8 / $40 in the lineup table of models/opus-5/overview (read 2026-12-05);
    # cache read $0.20 as reported from the pricing page on 2026-12-01 (not on a page read here).
    ("claude-fable-5-2", 8.0, 40.0, 0.20),
    ("claude-mythos-5-2", 8.0, 40.0, 0.20),
    ("claude-fable-5-1", 10.0, 50.0, 0.25),  # pricing page
    ("claude-mythos-5-1", 10.0, 50.0, 0.25),  # pricing page
    ("claude-fable-5", 10.0, 50.0, 1.0),  # pricing page
    ("claude-mythos-5", 10.0, 50.0, 1.0),  # pricing page
    # Opus 5.5: $4 / $20 (models/opus-5/overview lineup table); cache read $0.20 (0.05×) as
    # reported from its overview page (not read here).
    ("claude-opus-5-5", 4.0, 20.0, 0.20),
    ("claude-opus-5", 5.0, 25.0, 0.50),  # models/opus-5/overview
    ("claude-opus-4-8", 5.0, 25.0, 0.50),  # pricing page
    ("claude-opus-4-7", 5.0, 25.0, 0.50),  # pricing page
    ("claude-opus-4-6", 5.0, 25.0, 0.50),  # pricing page
    ("claude-opus-4-5", 5.0, 25.0, 0.50),  # pricing page
    ("claude-opus-4", 15.0, 75.0, 1.50),  # pricing page (Opus 4, 4.1)
    # Sonnet 5.5: $2 / $10 (models/sonnet-5-5/overview); its cache read was cut from $0.20 to
    # $0.10 on 2026-10-07 (reported from the pricing page; the overview read here still says $0.20).
    ("claude-sonnet-5-5", 2.0, 10.0, 0.10),
    ("claude-sonnet-5", 2.0, 10.0, 0.20),  # models/sonnet-5/overview
    ("claude-sonnet-4", 3.0, 15.0, 0.30),  # pricing page (Sonnet 4, 4.5, 4.6)
    ("claude-3-7-sonnet", 3.0, 15.0, 0.30),  # pricing page
    # Haiku 5.5: "from $0.10 / $0.50" (models/opus-5/overview lineup table): prompts up to 100K
    # tokens; longer prompts cost 5× on every token of that request, which a run's totals
    # can't tell apart, so long Haiku 5.5 prompts are underestimated.
    ("claude-haiku-5-5", 0.10, 0.50, 0.01),
    ("claude-haiku-4-5", 1.0, 5.0, 0.10),  # pricing page
    ("claude-3-5-haiku", 0.80, 4.0, 0.08),  # pricing page
    ("claude-3-haiku", 0.25, 1.25, 0.03),  # pricing page
    ("", 2.0, 10.0, 0.10),  # unknown: as the default model, claude-sonnet-5-5
)


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float
    known: bool

    @property
    def cache_write_per_mtok(self) -> float:
        return self.input_per_mtok * CACHE_WRITE_FACTOR


def price_for(model: str) -> Price:
    matches = [entry for entry in PRICES_PER_MTOK if model.startswith(entry[0])]
    prefix, input_price, output_price, read_price = max(matches, key=lambda entry: len(entry[0]))
    return Price(input_price, output_price, read_price, known=bool(prefix))


def estimated_cost(
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    web_search_requests: int = 0,
) -> float:
    """List-price cost in dollars of the given usage (``input_tokens`` is the uncached part)."""
    price = price_for(model)
    tokens = (
        input_tokens * price.input_per_mtok
        + cache_write_tokens * price.cache_write_per_mtok
        + cache_read_tokens * price.cache_read_per_mtok
        + output_tokens * price.output_per_mtok
    ) / 1_000_000
    return tokens + web_search_requests * WEB_SEARCH_PER_SEARCH
