"""Server processes on loopback: free ports, readiness by polling, and a stop that leaves nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

LOOPBACK = "127.0.0.1"
LOG_TAIL_CHARS = 3000
PORT_ATTEMPTS = 3
T = TypeVar("T")


class ServiceError(RuntimeError):
    pass


class PortTaken(ServiceError):
    """Another process bound a port between our choosing it and the server binding it."""


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free now, all different (held together while they are chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]


def executable(name: str, *folders: Path) -> str:
    """The program from these folders first, then the virtualenv's bin, then PATH."""
    for folder in (*folders, Path(sys.executable).parent):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        places = ", ".join(map(str, folders)) or "nowhere else"
        raise ServiceError(f"{name} is not installed (looked in {places}, the virtualenv, PATH)")
    return found


class ProcessGroup:
    """Processes that live and die together; each runs in its own process group (with its children)."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self._running: list[tuple[str, subprocess.Popen, int, float]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        stop_signal: int = signal.SIGTERM,
        stop_grace_s: float = 10.0,
        **popen,
    ) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps writing to it
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **popen,
            )
        finally:
            log.close()
        self._running.append((name, process, stop_signal, stop_grace_s))
        return process

    def log_tail(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text[-LOG_TAIL_CHARS:]

    def check_alive(self) -> None:
        for name, process, _, _ in self._running:
            if process.poll() is not None:
                tail = self.log_tail(name)
                error = PortTaken if "address already in use" in tail.lower() else ServiceError
                raise error(
                    f"{name} exited with status {process.returncode} during start-up; "
                    f"its log ends:\n{tail}"
                )

    def wait_until(self, ready: Callable[[], bool], what: str, timeout_s: float) -> None:
        """Polls ``ready`` until it holds; fails early when a process died, with its log."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            if ready():
                return
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {n}:\n{self.log_tail(n)}" for n, *_ in self._running)
                raise ServiceError(f"{what} not ready after {timeout_s:.0f} s; logs:\n{logs}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Each group gets its stop signal, last started first; what outlives its grace, SIGKILL."""
        running, self._running = self._running[::-1], []
        for _, process, stop_signal, _ in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, stop_signal)
        for _, process, _, grace_s in running:
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextlib.contextmanager
def started(log_dir: Path, launch: Callable[[ProcessGroup], T]) -> Iterator[T]:
    """Yields what ``launch`` returns once its processes serve; stops them afterwards.

    ``launch`` starts processes on freshly chosen free ports and waits for them; it is tried
    again (fresh ports) when one of them found a port taken in between.
    """
    for attempt in range(1, PORT_ATTEMPTS + 1):
        group = ProcessGroup(log_dir)
        try:
            result = launch(group)
        except PortTaken:
            group.stop()
            if attempt == PORT_ATTEMPTS:
                raise
            continue
        except BaseException:
            group.stop()
            raise
        break
    try:
        yield result
    finally:
        group.stop()


@contextlib.contextmanager
def process_group(log_dir: Path) -> Iterator[ProcessGroup]:
    group = ProcessGroup(log_dir)
    try:
        yield group
    finally:
        group.stop()
