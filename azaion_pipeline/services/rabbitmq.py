"""A real local RabbitMQ node with the streams plugin, for the local stack, demos and tests.

Runs Debian's ``rabbitmq-server`` package (3.10) straight from its lib directory, not through
``/usr/sbin/rabbitmq-server`` (that wrapper switches to the ``rabbitmq`` system user and reads
``/etc/rabbitmq``). Everything the node owns lives in one temporary directory: mnesia, logs,
its Erlang cookie (``HOME``) and its config. It binds 127.0.0.1 only, on free ports, with its
own epmd, a unique node name, and a user and password generated for this start (no guest), so
several nodes run side by side on one host.

``running()`` yields a ``RabbitMQNode``: its ports, credentials, the environment the pipeline
reads (``RABBITMQ_*``), an AMQP URL for Celery, and ``restart()`` (same data, same ports).
Stopping kills the node's whole process group and its epmd: nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Debian's package keeps the real start script under its versioned lib directory.
SERVER_SCRIPT_GLOB = "/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server"
DEFAULT_QUEUE_NAME = "azaion-annotations"
LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
START_ATTEMPTS = 3


class RabbitMQStartError(RuntimeError):
    pass


def server_script() -> Path:
    found = sorted(glob.glob(SERVER_SCRIPT_GLOB))
    if not found:
        raise RabbitMQStartError(
            "RabbitMQ is not installed: no "
            f"{SERVER_SCRIPT_GLOB} (Debian package rabbitmq-server; `make rabbitmq` installs it)"
        )
    return Path(found[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _config(amqp_port: int, stream_port: int, user: str, password: str, log_dir: Path) -> str:
    return "\n".join(
        [
            f"listeners.tcp.1 = {LOOPBACK}:{amqp_port}",
            f"stream.listeners.tcp.1 = {LOOPBACK}:{stream_port}",
            # Stream clients reconnect to the advertised address, the host name by default.
            f"stream.advertised_host = {LOOPBACK}",
            f"stream.advertised_port = {stream_port}",
            f"default_user = {user}",
            f"default_pass = {password}",
            "default_user_tags.administrator = true",
            "loopback_users = none",
            # A nearly full temp disk must not block publishers in tests and demos.
            "disk_free_limit.absolute = 50MB",
            f"log.file = {log_dir / 'rabbit.log'}",
            "log.file.level = info",
            "log.console = false",
            "",
        ]
    )


@dataclass
class RabbitMQNode:
    """A started node. ``env`` holds the pipeline's RABBITMQ_* settings for it."""

    base_dir: Path
    node_name: str
    amqp_port: int
    stream_port: int
    dist_port: int
    epmd_port: int
    user: str
    password: str
    queue_name: str = DEFAULT_QUEUE_NAME
    host: str = LOOPBACK
    run_as: str | None = None
    _process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def env(self) -> dict[str, str]:
        return {
            "RABBITMQ_HOST": self.host,
            "RABBITMQ_PORT": str(self.stream_port),
            "RABBITMQ_USER": self.user,
            "RABBITMQ_PASSWORD": self.password,
            "RABBITMQ_QUEUE_NAME": self.queue_name,
        }

    @property
    def amqp_url(self) -> str:
        return f"amqp://{self.user}:{self.password}@{self.host}:{self.amqp_port}//"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "log" / "rabbit.log"

    def _server_env(self) -> dict[str, str]:
        # Nothing inherited may point the node at /etc/rabbitmq, another node or another epmd.
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("RABBITMQ_", "ERL_"))
        }
        base = self.base_dir
        return {
            **inherited,
            "HOME": str(base),  # the Erlang cookie is created here
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": ("-kernel inet_dist_use_interface {127,0,0,1}"),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": LOOPBACK,
        }

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError(f"{self.node_name} is already running")
        command = [str(server_script())]
        log = (self.base_dir / "log" / "stdout.log").open("ab")
        self._process = subprocess.Popen(
            command,
            env=self._server_env(),
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group: stop() kills erl and its children
            user=self.run_as,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        # `rabbitmqctl await_startup` returns at once while the node is not up: poll the
        # listeners instead; the AMQP one opens last, once boot has finished.
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RabbitMQStartError(
                    f"RabbitMQ exited with {self._process.returncode} while starting\n"
                    + self._log_tail()
                )
            if (
                port_open(self.stream_port)
                and port_open(self.amqp_port)
                and self._stream_declared()
            ):
                return
            time.sleep(0.2)
        self.stop()
        raise RabbitMQStartError(
            f"RabbitMQ did not open ports {self.amqp_port}/{self.stream_port} "
            f"within {START_TIMEOUT_S:.0f}s\n" + self._log_tail()
        )

    def _stream_declared(self) -> bool:
        """Declare the annotation stream: it answers only once the stream coordinator is up."""
        from rstream import Producer
        from rstream.exceptions import ServerError

        async def declare() -> None:
            async with Producer(
                self.host, self.stream_port, username=self.user, password=self.password
            ) as producer:
                await producer.create_stream(self.queue_name, exists_ok=True)

        try:
            asyncio.run(declare())
        except (ServerError, OSError):
            return False
        return True

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _log_tail(self, lines: int = 30) -> str:
        text = ""
        for path in (self.base_dir / "log" / "stdout.log", self.log_file):
            if path.is_file():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            # SIGTERM: RabbitMQ stops its listeners and flushes its queues, then exits.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_TIMEOUT_S)
        # Whatever the node started in its group (erl_child_setup, inet_gethost ...).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for port in (self.amqp_port, self.stream_port):
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while port_open(port) and time.monotonic() < deadline:
                time.sleep(0.1)

    def restart(self) -> None:
        """Stop and start again on the same ports with the same data (streams, offsets, user)."""
        self.stop()
        self.start()

    def stop_epmd(self) -> None:
        # epmd daemonises out of the node's process group; it exits on -kill once unused.
        subprocess.run(
            ["epmd", "-port", str(self.epmd_port), "-kill"],
            env={**self._server_env()},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=30,
        )


def _run_as_account() -> str | None:
    """RabbitMQ runs as root when allowed; AZAION_RABBITMQ_RUN_AS forces another account."""
    forced = os.environ.get("AZAION_RABBITMQ_RUN_AS")
    if forced:
        pwd.getpwnam(forced)  # a clear KeyError for a missing account
        return forced
    return None


def _prepared_node(base_dir: Path, queue_name: str, run_as: str | None) -> RabbitMQNode:
    """A node with fresh ports, name and credentials, its files written into ``base_dir``."""
    token = secrets.token_hex(4)
    node = RabbitMQNode(
        base_dir=base_dir,
        node_name=f"azaion-{token}@localhost",
        amqp_port=free_port(),
        stream_port=free_port(),
        dist_port=free_port(),
        epmd_port=free_port(),
        user=f"azaion-{token}",
        password=secrets.token_urlsafe(24),
        queue_name=queue_name,
        run_as=run_as,
    )
    (base_dir / "log").mkdir(parents=True, exist_ok=True)
    (base_dir / "mnesia").mkdir(exist_ok=True)
    (base_dir / "rabbitmq-env.conf").write_text("")
    (base_dir / "enabled_plugins").write_text("[rabbitmq_stream].\n")
    config = base_dir / "rabbitmq.conf"
    config.touch(mode=0o600)
    config.write_text(
        _config(node.amqp_port, node.stream_port, node.user, node.password, base_dir / "log")
    )
    if run_as:
        account = pwd.getpwnam(run_as)
        for path in [base_dir, *base_dir.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid)
    return node


@contextlib.contextmanager
def running(
    queue_name: str = DEFAULT_QUEUE_NAME, base_dir: Path | None = None
) -> Iterator[RabbitMQNode]:
    """Start a fresh node (temporary data unless ``base_dir``), yield it, stop it cleanly."""
    run_as = _run_as_account()
    with contextlib.ExitStack() as stack:
        if base_dir is None:
            base_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="azaion-mq-")))
        base_dir = Path(base_dir).absolute()
        for attempt in range(1, START_ATTEMPTS + 1):
            node = _prepared_node(base_dir, queue_name, run_as)
            try:
                node.start()
                break
            except RabbitMQStartError:
                node.stop()
                node.stop_epmd()
                # A free port can be taken by another process before the node binds it.
                if attempt == START_ATTEMPTS:
                    raise
        stack.callback(node.stop_epmd)
        stack.callback(node.stop)
        yield node
