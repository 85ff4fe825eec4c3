"""Annotation intake from Azaion's RabbitMQ stream: decode, route, write exactly once, seal batches.

``messages`` decodes and validates the platform's msgpack messages; ``store`` applies them to
the Azaion root (atomic, idempotent by annotation name, dead letters for bad ones);
``provenance`` is the sidecar kept beside each annotation; ``batches`` seals what is durable;
``consumer`` is the long-running rstream consumer; ``publisher`` plays the platform.
"""
