"""Benchmarks of the real service (docs/performance.md): run each script from the repo root."""
