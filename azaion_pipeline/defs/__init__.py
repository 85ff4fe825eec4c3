"""Dagster wiring, one folder per stage. Autoloaded by ``azaion_pipeline.definitions``."""
