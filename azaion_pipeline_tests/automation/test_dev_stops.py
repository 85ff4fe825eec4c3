"""`azaion-pipeline dev` stops everything it started on SIGTERM and SIGINT: the webserver, the
daemon, the code servers and the local services, with no process left and no port listening."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from azaion_pipeline.lib.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow
STARTUP_TIMEOUT_S = 240
STOP_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_ports(processes: list[psutil.Process]) -> set[int]:
    ports = set()
    for process in processes:
        try:
            connections = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        ports |= {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN}
    return ports


def is_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_dev_leaves_no_process_and_no_port_behind(tmp_path, stop):
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "AZAION_ROOT_DIR": str(tmp_path / "azaion"),
        "AZAION_AUTOMATION_RUNNING": "false",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    env.pop("AZAION_WEBHOOK_URL", None)
    command = [str(Path(sys.executable).with_name("azaion-pipeline")), "dev", "--port", str(port)]
    log = (tmp_path / "dev.log").open("wb")
    # A new session only so that the test can clean up if the command under test fails to.
    dev = subprocess.Popen(
        command, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert dev.poll() is None, Path(log.name).read_text()[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the UI did not come up"
            time.sleep(1)
        root = psutil.Process(dev.pid)
        started += [root, *root.children(recursive=True)]
        ports = listening_ports(started)
        # the UI, the reference API and S3 at least
        assert port in ports and len(ports) >= 3, ports
        assert len(started) >= 4  # dev, dagster dev, webserver, daemon (+ code servers)

        os.kill(dev.pid, stop)  # this process only, as a service manager would
        dev.wait(timeout=STOP_TIMEOUT_S)

        _, alive = psutil.wait_procs(started, timeout=10)
        assert alive == [], alive
        assert [p for p in ports if is_open(p)] == []
    finally:  # whatever the command under test left behind
        for process in started:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
        log.close()
