"""Fixtures for every tier (unit/, integration/, e2e/, deploy/), defined in support/ and registered here."""

import os

from ml_platform_tests.support.migrations import read_migrations_once

# One OpenMP thread per process (torch, its MKL, scikit-learn), in this session and every server it starts:
# by default each spins one per core, and beside the servers, run workers and other sessions on 2 shared cores
# they spin against each other (test_use_cases' prices tests beside another torch process: 329 s, 30 s with
# one). Set before anything imports torch; an OMP_NUM_THREADS already set wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

read_migrations_once()  # support/migrations.py: ~0.2 s off every new Dagster SQLite database in this session

pytest_plugins = (
    "ml_platform_tests.support.fixtures",  # data_dir, webhook, churn_spec, trained_platform, trained_copy
    "ml_platform_tests.support.postgres",  # postgres_url, postgres_schema, postgres_database
    "ml_platform_tests.support.use_cases",  # use_case_platform (fraud, prices), news_platform
    "ml_platform_tests.support.scheduling",  # make test's xdist units: a file, or the files sharing a platform
)
