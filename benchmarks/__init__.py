"""Benchmarks: `make bench`. Not tests: they print figures beside a baseline measured in the same run."""
