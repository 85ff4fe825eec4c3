"""Server processes: a port taken between choosing and binding it is retried; stops are clean."""

from __future__ import annotations

import socket
import sys

import pytest

from azaion_pipeline.services.processes import ServiceError, free_ports, started

# A server that binds the port it is given and says so in a file, or dies saying it is taken.
SERVE = """
import pathlib, socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
pathlib.Path(sys.argv[2]).touch()
time.sleep(600)
"""


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_a_port_taken_meanwhile_is_retried_on_fresh_ports(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        offered = iter([taken, *free_ports(1)])
        tried = []

        def launch(group):
            port = next(offered)
            tried.append(port)
            ready = tmp_path / f"ready-{port}"
            process = group.start("server", [sys.executable, "-c", SERVE, str(port), str(ready)])
            group.wait_until(ready.exists, "server", 30)
            return port, process

        with started(tmp_path, launch) as (port, process):
            assert tried == [taken, port]
            assert accepts(port)
        assert process.poll() is not None  # stopped with the context
        assert not accepts(port)


def test_a_server_that_fails_otherwise_is_not_retried_and_shows_its_log(tmp_path):
    calls = []

    def launch(group):
        calls.append(1)
        group.start("broken", [sys.executable, "-c", "raise SystemExit('no config file')"])
        group.wait_until(lambda: False, "broken", 30)

    with pytest.raises(ServiceError, match="no config file"), started(tmp_path, launch):
        pass
    assert calls == [1]
