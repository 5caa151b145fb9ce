"""The daily report of a multiclass use case, as Markdown: pure functions of one day's predictions.

What an editor wants from a day of classified items: how many of each class and how that compares with
the previous days, the items the model was least sure of (to read first), and the clearest examples of
each class. The `report` asset writes it to the lake and shows it on the asset's partition in the UI.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ml_platform.spec import UseCaseSpec
from ml_platform.steps import PREDICTED_CLASS

HISTORY_DAYS = 7
LOW_CONFIDENCE_ROWS = 5
EXAMPLES_PER_CLASS = 2
SNIPPET_CHARS = 160


def history_days(day: str, count: int = HISTORY_DAYS) -> list[str]:
    """The `count` days before `day`, oldest first: what a day's class shares are compared with."""
    first = dt.date.fromisoformat(day)
    return [(first - dt.timedelta(days=offset)).isoformat() for offset in range(count, 0, -1)]


def daily_report(spec: UseCaseSpec, day: str, scored: pd.DataFrame, history: pd.DataFrame) -> str:
    """Markdown for `day`: `scored` holds the day's predictions with the text feature, `history` the
    predictions of earlier days (possibly none)."""
    versions = ", ".join(f"v{version}" for version in sorted(scored["model_version"].astype(str).unique()))
    history_span = f"{history['day'].min()}..{history['day'].max()}" if len(history) else "none"
    lines = [
        f"# {spec.name}: {day}",
        "",
        f"{len(scored)} item(s) classified by model {versions or '(none)'}; compared with {len(history)} item(s) of "
        f"the previous {HISTORY_DAYS} days ({history_span}).",
        "",
        *_class_table(spec, scored, history),
        "",
        *_least_confident(spec, scored),
        "",
        *_examples(spec, scored),
    ]
    return "\n".join(lines) + "\n"


def _class_table(spec: UseCaseSpec, scored: pd.DataFrame, history: pd.DataFrame) -> list[str]:
    today = _shares(scored, spec.classes)
    before = _shares(history, spec.classes)
    lines = ["## Classes", "", "| class | items | share | share before | change |", "|---|---:|---:|---:|---:|"]
    for name in spec.classes:
        count, share = today[name]
        earlier = before[name][1]
        before_text, change = (f"{earlier:.1%}", f"{100 * (share - earlier):+.1f} pp") if len(history) else ("-", "-")
        lines.append(f"| {name} | {count} | {share:.1%} | {before_text} | {change} |")
    return lines


def _shares(frame: pd.DataFrame, classes: list[str]) -> dict[str, tuple[int, float]]:
    counts = frame[PREDICTED_CLASS].value_counts() if len(frame) else pd.Series(dtype="int64")
    total = max(len(frame), 1)
    return {name: (int(counts.get(name, 0)), float(counts.get(name, 0)) / total) for name in classes}


def _least_confident(spec: UseCaseSpec, scored: pd.DataFrame) -> list[str]:
    rows = scored.nsmallest(LOW_CONFIDENCE_ROWS, "score")
    lines = [
        f"## Least confident ({len(rows)} of {len(scored)}: read these first)",
        "",
        f"| {spec.subject} | predicted | probability | text |",
        "|---|---|---:|---|",
    ]
    lines += [
        f"| {row[spec.subject]} | {row[PREDICTED_CLASS]} | {row['score']:.2f} | {_snippet(row[text_feature(spec)])} |"
        for _, row in rows.iterrows()
    ]
    return lines


def _examples(spec: UseCaseSpec, scored: pd.DataFrame) -> list[str]:
    lines = ["## Clearest examples per class"]
    for name in spec.classes:
        rows = scored[scored[PREDICTED_CLASS] == name].nlargest(EXAMPLES_PER_CLASS, "score")
        if rows.empty:
            continue
        lines += ["", f"**{name}**", ""]
        lines += [
            f"- {row['score']:.2f} `{row[spec.subject]}`: {_snippet(row[text_feature(spec)])}"
            for _, row in rows.iterrows()
        ]
    return lines


def text_feature(spec: UseCaseSpec) -> str:
    """The feature holding each item's text (a multiclass text use case has exactly one)."""
    return next(feature.name for feature in spec.features if feature.agg == "text")


def _snippet(text: object) -> str:
    """The start of a text on one line, safe inside a Markdown table cell."""
    flat = " ".join(str(text if text is not None else "").split())
    short = flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1].rstrip() + "…"
    return short.replace("|", "\\|").replace("`", "'")
