"""How each outside system starts locally, in one place for devstack, demo, dev and the tests."""
