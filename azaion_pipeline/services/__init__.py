"""How each outside system starts locally (broker, S3, Postgres): one place per service."""
