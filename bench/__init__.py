"""Benchmarks that print ratios; `python -m bench` runs them all, results go in docs/benchmarks.md."""
