"""Integration tier: Dagster runs in process on the trained churn platform, Postgres, MLflow servers, loopback
webhooks."""
