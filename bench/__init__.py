"""Benchmarks of the portal: every figure is a ratio measured within one run (``make bench``)."""
