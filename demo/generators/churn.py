"""Synthetic daily customer activity for the churn use case.

Customers log in, run sessions, buy, open support tickets and change plans.
Each day a customer may become "at risk": from then on their engagement
decays and tickets rise until they cancel 5-20 days later, after which they
emit nothing. That decay is the signal the rolling-window features can learn.
The simulation is vectorised over customers and reproducible by seed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from demo.landing import land_days

PLANS = np.array(["basic", "standard", "premium"])
PLAN_WEIGHTS = np.array([0.5, 0.35, 0.15])
EVENT_TYPES = ("login", "session", "purchase", "support_ticket", "plan_change")
EVENTS_PER_ACTIVE_CUSTOMER = 3.6  # mean of the rates below, used to size the population
DAILY_RISK_HAZARD = 0.006


def generate_churn_events(
    start: dt.date, days: int, events_per_day: int = 5_000, seed: int = 0
) -> Iterator[tuple[dt.date, pd.DataFrame]]:
    """Yield (day, events) for `days` consecutive days starting at `start`."""
    rng = np.random.default_rng(seed)
    population = max(10, int(events_per_day / EVENTS_PER_ACTIVE_CUSTOMER))
    customers = _Customers(rng, population)
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        customers.sign_up(max(0, int(rng.poisson(population * DAILY_RISK_HAZARD))))
        yield day, customers.simulate_day(day, offset)


class _Customers:
    """Columnar state of every customer; one call to `simulate_day` per day."""

    def __init__(self, rng: np.random.Generator, count: int) -> None:
        self.rng = rng
        self.ids = np.empty(0, dtype=np.int64)
        self.plan = np.empty(0, dtype=object)
        self.login_rate = np.empty(0)
        self.risk_day = np.empty(0)
        self.cancel_day = np.empty(0)
        self.active = np.empty(0, dtype=bool)
        self.sign_up(count)

    def sign_up(self, count: int) -> None:
        rng = self.rng
        self.ids = np.concatenate([self.ids, np.arange(len(self.ids), len(self.ids) + count) + 100_000])
        self.plan = np.concatenate([self.plan, rng.choice(PLANS, size=count, p=PLAN_WEIGHTS)])
        self.login_rate = np.concatenate([self.login_rate, rng.gamma(4.0, 0.3, size=count)])
        self.risk_day = np.concatenate([self.risk_day, np.full(count, np.inf)])
        self.cancel_day = np.concatenate([self.cancel_day, np.full(count, np.inf)])
        self.active = np.concatenate([self.active, np.ones(count, dtype=bool)])

    def simulate_day(self, day: dt.date, offset: int) -> pd.DataFrame:
        rng = self.rng
        n = len(self.ids)
        # Low-engagement and basic-plan customers are likelier to become at risk.
        hazard = (
            DAILY_RISK_HAZARD * np.where(self.plan == "basic", 1.5, 0.7) * np.where(self.login_rate < 0.8, 1.6, 1.0)
        )
        becomes_risky = self.active & np.isinf(self.risk_day) & (rng.random(n) < hazard)
        self.risk_day[becomes_risky] = offset
        self.cancel_day[becomes_risky] = offset + rng.integers(5, 21, size=int(becomes_risky.sum()))

        days_at_risk = np.where(np.isinf(self.risk_day), -1.0, offset - self.risk_day)
        engagement = np.where(days_at_risk >= 0, np.exp(-np.maximum(days_at_risk, 0) / 4.0), 1.0)
        plan_spend = np.select([self.plan == "premium", self.plan == "standard"], [3.0, 1.8], 1.0)
        rates = {
            "login": self.login_rate * engagement,
            "session": 0.9 * self.login_rate * engagement,
            "purchase": 0.08 * plan_spend * engagement,
            "support_ticket": np.where(days_at_risk >= 0, 0.25, 0.03),
            "plan_change": np.full(n, 0.004),
        }
        frames = [self._events(day, event_type, rng.poisson(rate * self.active)) for event_type, rate in rates.items()]

        cancelling = self.active & (self.cancel_day == offset)
        frames.append(self._events(day, "cancellation", cancelling.astype(np.int64)))
        self.active &= ~cancelling

        events = pd.concat([frame for frame in frames if len(frame)], ignore_index=True)
        events = events.sort_values("event_time", kind="stable").reset_index(drop=True)
        stamp = day.strftime("%Y%m%d")
        events.insert(0, "event_id", [f"{stamp}-{i:07d}" for i in range(len(events))])
        return events

    def _events(self, day: dt.date, event_type: str, counts: np.ndarray) -> pd.DataFrame:
        rng = self.rng
        index = np.repeat(np.arange(len(counts)), counts)
        size = len(index)
        midnight = pd.Timestamp(day, tz="UTC")
        seconds = rng.integers(0, 86_400, size=size)
        minutes = rng.gamma(2.0, 12.0, size=size).round(1) if event_type == "session" else np.full(size, np.nan)
        amounts = rng.lognormal(3.0, 0.6, size=size).round(2) if event_type == "purchase" else np.full(size, np.nan)
        return pd.DataFrame(
            {
                "customer_id": self.ids[index],
                "event_time": midnight + pd.to_timedelta(seconds, unit="s"),
                "event_type": event_type,
                "plan": self.plan[index].astype(str),
                "session_minutes": minutes,
                "amount": amounts,
                "cancelled": np.full(size, int(event_type == "cancellation"), dtype=np.int64),
            }
        )


def write_landing_files(
    directory: str | Path,
    start: dt.date,
    days: int,
    events_per_day: int = 5_000,
    seed: int = 0,
    file_format: str = "parquet",
) -> list[Path]:
    """Generate churn events and land them as one file per day; existing files are kept, not overwritten."""
    return land_days(directory, generate_churn_events(start, days, events_per_day, seed), file_format)
