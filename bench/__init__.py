"""Benchmarks (not tests, not shipped): each prints a table; `python -m bench.<name> --help`."""
