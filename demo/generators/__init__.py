"""Events of the shipped use cases, one generator per use case: synthetic for churn, fraud and prices, real
Reuters articles on synthetic days for news.

Each generator yields (day, events) for consecutive days, reproducibly by seed; `demo.landing`
writes them as landing files. They exist for the demo, the tests and the benchmark, not for the
platform: `ml_platform` never imports them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pandas as pd

from demo.generators.churn import generate_churn_events
from demo.generators.fraud import generate_fraud_events
from demo.generators.news import generate_news_events
from demo.generators.prices import generate_price_events

Generator = Callable[..., Iterator[tuple[dt.date, pd.DataFrame]]]


def generators() -> dict[str, Generator]:
    """Data of the shipped use cases, by use-case name."""
    return {
        "churn": generate_churn_events,
        "fraud": generate_fraud_events,
        "prices": generate_price_events,
        "news": generate_news_events,
    }
