"""Benchmark scoring: pair-level metrics, bootstrap intervals, paired tests and reports.

Plain Python (no dagster), so the scoring can be unit-tested and reused outside the asset graph.
``metrics`` turns per-pair verdicts into numbers; ``report`` turns leaderboard rows into charts,
Markdown and a self-contained HTML page.
"""
