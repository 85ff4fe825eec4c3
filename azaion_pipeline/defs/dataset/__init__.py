"""Dagster wiring for the dataset stage."""
