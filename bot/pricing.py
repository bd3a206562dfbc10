"""Estimated cost of a run: one table of list prices per model family, kept here only.

Prices are US dollars per million tokens (input, output). Prompt-cache writes cost 1.25×
the input price and cache reads 0.1×. Code-execution container time is not included.
"""

from __future__ import annotations

from dataclasses import dataclass

# Longest matching prefix wins; the last entry is the fallback for unknown models.
PRICES_PER_MTOK: tuple[tuple[str, float, float], ...] = (
    ("claude-opus-5", 5.0, 25.0),
    ("claude-opus-4-8", 5.0, 25.0),
    ("claude-opus-4-7", 5.0, 25.0),
    ("claude-opus-4-6", 5.0, 25.0),
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet", 3.0, 15.0),
    ("claude-haiku-5", 1.0, 5.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("claude-haiku", 0.8, 4.0),
    ("", 3.0, 15.0),
)
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    known: bool


def price_for(model: str) -> Price:
    matches = [entry for entry in PRICES_PER_MTOK if model.startswith(entry[0])]
    prefix, input_price, output_price = max(matches, key=lambda entry: len(entry[0]))
    return Price(input_price, output_price, known=bool(prefix))


def estimated_cost(
    model: str, *, input_tokens: int, output_tokens: int, cache_read_tokens: int = 0, cache_write_tokens: int = 0
) -> float:
    price = price_for(model)
    return (
        input_tokens * price.input_per_mtok
        + cache_write_tokens * price.input_per_mtok * CACHE_WRITE_FACTOR
        + cache_read_tokens * price.input_per_mtok * CACHE_READ_FACTOR
        + output_tokens * price.output_per_mtok
    ) / 1_000_000
