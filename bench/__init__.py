"""Benchmarks of arxiv-digest (python -m bench)."""
