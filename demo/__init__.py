"""The demo of the platform and the synthetic data behind it, kept out of `ml_platform`.

`ml-platform-demo` (or `python -m demo`): `generate` lands synthetic day files of a shipped use
case, `run` lands them and runs backfill, training, gates, promotion, scoring and drift with
progress per stage, then prints the summary. The tests and the benchmark use the same generators.
This package imports `ml_platform`; `ml_platform` never imports it.
"""
