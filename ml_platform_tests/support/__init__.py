"""What the tiers share: fixtures (registered by ../conftest.py), servers, GraphQL, polling, Postgres, fault proxy,
webhook."""
