"""Fixtures for every tier (unit/, integration/, e2e/, deploy/), defined in support/ and registered here."""

pytest_plugins = (
    "ml_platform_tests.support.fixtures",  # data_dir, webhook, churn_spec, trained_platform, trained_copy
    "ml_platform_tests.support.postgres",  # postgres_url, postgres_schema, postgres_database
    "ml_platform_tests.support.use_cases",  # use_case_platform (fraud, prices), news_platform
)
