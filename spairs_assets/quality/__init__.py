"""Data quality: Great Expectations 1.x suites for every table (run inside Dagster asset checks)."""
