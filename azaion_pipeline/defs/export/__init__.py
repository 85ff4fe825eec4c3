"""Dagster wiring for the export stage."""
