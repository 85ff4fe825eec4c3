"""Dagster wiring for the publish stage."""
