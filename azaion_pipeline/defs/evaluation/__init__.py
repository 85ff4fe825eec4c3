"""Dagster wiring for the evaluation stage: the export scored, and the promotion gate."""
