"""Benchmarks: one module per measured claim; `python -m benchmarks.run` prints the table."""
