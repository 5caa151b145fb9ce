"""Unit tier: pure and in-process, seconds each; `make test-unit` runs it in under a minute."""
