"""The demo of the platform and the synthetic data behind it, kept out of `ml_platform`.

`python -m demo`, run from the repository root (the package is not in the platform's wheel): `generate` lands
synthetic day files of a shipped use case, `run` lands them and runs backfill, training, gates, promotion,
scoring and drift with progress per stage, then prints the summary; `ui` serves the Dagster and MLflow UIs
(`make ui`). The tests and the benchmarks use the same generators, importing `demo` from the checkout.
This package imports `ml_platform`; `ml_platform` never imports it.
"""
