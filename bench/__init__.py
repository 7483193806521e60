"""Benchmarks: `make bench` (see bench/RESULTS.md). Not tests; nothing here is timed in CI."""
