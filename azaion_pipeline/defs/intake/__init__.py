"""Intake wiring: sealed stream batches become partitions and runs of ``annotation_batch``."""
