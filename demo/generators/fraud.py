"""Synthetic card transactions for the fraud use case , about 1% fraud.

Legitimate spending follows each card's habits: its usual amount, mostly
point-of-sale, near home, in the daytime. Fraud comes from compromised cards
and looks like real fraud: several of large amounts, risky merchant categories
(electronics, gift cards, online services), online or ATM channels, a new
device, far from home, at night — each pattern noisy on its own, together
learnable. Reproducible by seed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pandas as pd

CATEGORIES = np.array(
    ["grocery", "restaurant", "fuel", "retail", "travel", "electronics", "gift_cards", "online_services"]
)
LEGIT_CATEGORY_WEIGHTS = np.array([0.3, 0.2, 0.12, 0.2, 0.04, 0.06, 0.02, 0.06])
RISKY_CATEGORIES = np.array(["electronics", "gift_cards", "online_services"])
FRAUD_RATE = 0.01
TRANSACTIONS_PER_CARD_PER_DAY = 1.2


def generate_fraud_events(
    start: dt.date, days: int, events_per_day: int = 3_000, seed: int = 0
) -> Iterator[tuple[dt.date, pd.DataFrame]]:
    rng = np.random.default_rng(seed)
    cards = max(20, int(events_per_day / TRANSACTIONS_PER_CARD_PER_DAY))
    typical_amount = rng.lognormal(3.3, 0.6, size=cards)
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        counts = rng.poisson(TRANSACTIONS_PER_CARD_PER_DAY, size=cards)
        card = np.repeat(np.arange(cards), counts)
        fraud = rng.random(len(card)) < FRAUD_RATE
        yield day, _transactions(rng, day, card, fraud, typical_amount)


def _transactions(
    rng: np.random.Generator, day: dt.date, card: np.ndarray, fraud: np.ndarray, typical: np.ndarray
) -> pd.DataFrame:
    n = len(card)

    def pick(fraud_value: np.ndarray, legit_value: np.ndarray, fraud_probability: float) -> np.ndarray:
        """Fraud shows its pattern with the given probability, otherwise it looks legitimate."""
        return np.where(fraud & (rng.random(n) < fraud_probability), fraud_value, legit_value)

    legit_hour = np.clip(rng.normal(14, 4, size=n), 6, 23.99)
    hour = pick(rng.uniform(0, 5.99, size=n), legit_hour, 0.65)
    amount = pick(typical[card] * rng.uniform(4, 15, size=n), typical[card] * rng.lognormal(0, 0.45, size=n), 0.9)
    category = pick(
        rng.choice(RISKY_CATEGORIES, size=n), rng.choice(CATEGORIES, size=n, p=LEGIT_CATEGORY_WEIGHTS), 0.85
    )
    channel = pick(
        rng.choice(np.array(["online", "atm"]), size=n, p=[0.8, 0.2]),
        rng.choice(np.array(["pos", "online", "atm"]), size=n, p=[0.72, 0.23, 0.05]),
        0.9,
    )
    device_new = pick(np.ones(n, dtype=np.int64), (rng.random(n) < 0.03).astype(np.int64), 0.85)
    travelling = rng.random(n) < 0.03
    legit_distance = np.where(travelling, rng.uniform(150, 2_000, size=n), rng.exponential(8.0, size=n))
    distance = pick(rng.uniform(300, 6_000, size=n), legit_distance, 0.8)

    seconds = (hour * 3600).astype(np.int64)
    frame = (
        pd.DataFrame(
            {
                "card_id": card.astype(np.int64) + 4_000_000,
                "event_time": pd.Timestamp(day, tz="UTC") + pd.to_timedelta(seconds, unit="s"),
                "amount": amount.round(2),
                "merchant_category": category.astype(str),
                "channel": channel.astype(str),
                "device_new": device_new.astype(np.int64),
                "distance_km": distance.round(1),
                "is_fraud": fraud.astype(np.int64),
            }
        )
        .sort_values("event_time", kind="stable")
        .reset_index(drop=True)
    )
    stamp = day.strftime("%Y%m%d")
    frame.insert(0, "transaction_id", [f"t{stamp}-{i:07d}" for i in range(len(frame))])
    return frame
