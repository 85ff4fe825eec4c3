"""A real PostgreSQL on loopback for the Dagster instance: Debian's ``postgresql`` package.

PostgreSQL refuses to run as root, so as root the server runs as an unprivileged user
(``nobody`` unless ``AZAION_PG_OS_USER`` names another) through ``setpriv``; its data lives in
a temp dir that user owns. It listens on a free loopback TCP port only (no Unix socket), with
scram-sha-256 and a generated password. Yields the DAGSTER_PG_* variables that
configs/dagster.postgres.yaml reads.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from azaion_pipeline.services.processes import (
    LOOPBACK,
    ProcessGroup,
    ServiceError,
    executable,
    free_ports,
    started,
)

DEBIAN_BINARIES = Path("/usr/lib/postgresql")
OS_USER_ENV = "AZAION_PG_OS_USER"
DEFAULT_OS_USER = "nobody"
SUPERUSER = "dagster"
DATABASE = "dagster"
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 30.0


def _binaries() -> list[Path]:
    """Debian's versioned folders, newest first (the package installs one)."""
    folders = DEBIAN_BINARIES.glob("*/bin")
    return sorted(folders, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)[::-1]


def _as_user() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that drops root, and the user it drops to (none when not root)."""
    if os.geteuid() != 0:
        return [], None
    user = pwd.getpwnam(os.environ.get(OS_USER_ENV, DEFAULT_OS_USER))
    prefix = [
        executable("setpriv"),
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--clear-groups",
        "--",
    ]
    return prefix, user


def _connectable(port: int, password: str, database: str) -> bool:
    import psycopg2

    try:
        psycopg2.connect(
            host=LOOPBACK,
            port=port,
            user=SUPERUSER,
            password=password,
            dbname=database,
            connect_timeout=2,
        ).close()
    except psycopg2.OperationalError:
        return False
    return True


def create_database(env: dict[str, str], name: str) -> dict[str, str]:
    """A new empty database on the same server; returns the env pointing at it."""
    import psycopg2
    from psycopg2 import sql

    connection = psycopg2.connect(
        host=env["DAGSTER_PG_HOST"],
        port=int(env["DAGSTER_PG_PORT"]),
        user=env["DAGSTER_PG_USERNAME"],
        password=env["DAGSTER_PG_PASSWORD"],
        dbname=env["DAGSTER_PG_DB"],
    )
    try:
        connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()
    return {**env, "DAGSTER_PG_DB": name}


@contextlib.contextmanager
def postgres() -> Iterator[dict[str, str]]:
    """Starts PostgreSQL with an empty ``dagster`` database; yields DAGSTER_PG_*; stops and
    removes it afterwards."""
    folders = _binaries()
    initdb = executable("initdb", *folders)
    server = executable("postgres", *folders)
    prefix, user = _as_user()
    base = Path(tempfile.mkdtemp(prefix="azaion-pg-"))
    try:
        if user is not None:  # the server's user must own its files; /tmp lets it reach them
            os.chown(base, user.pw_uid, user.pw_gid)
        password = secrets.token_urlsafe(24)
        password_file = base / "password"
        password_file.touch(mode=0o600)
        password_file.write_text(password + "\n")
        if user is not None:
            os.chown(password_file, user.pw_uid, user.pw_gid)
        data = base / "data"
        init = subprocess.run(
            [
                *prefix, initdb, "-D", str(data), f"--username={SUPERUSER}",
                f"--pwfile={password_file}", "--auth=scram-sha-256", "--encoding=UTF8",
                "--locale=C", "--no-instructions",
            ],
            capture_output=True,
            text=True,
        )  # fmt: skip
        password_file.unlink()
        if init.returncode != 0:
            raise ServiceError(f"initdb failed: {init.stderr.strip()[-2000:]}")

        def launch(group: ProcessGroup) -> dict[str, str]:
            [port] = free_ports(1)
            group.start(
                "postgres",
                [
                    *prefix, server, "-D", str(data), "-c", f"listen_addresses={LOOPBACK}",
                    "-c", f"port={port}", "-c", "unix_socket_directories=",
                    # A disposable instance: durability buys nothing here.
                    "-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off",
                ],
                stop_signal=signal.SIGINT,  # "fast" shutdown: ends sessions, then stops
                stop_grace_s=STOP_GRACE_S,
            )  # fmt: skip
            group.wait_until(
                lambda: _connectable(port, password, "postgres"),
                f"PostgreSQL on {LOOPBACK}:{port}",
                START_TIMEOUT_S,
            )
            return {
                "DAGSTER_PG_HOST": LOOPBACK,
                "DAGSTER_PG_PORT": str(port),
                "DAGSTER_PG_USERNAME": SUPERUSER,
                "DAGSTER_PG_PASSWORD": password,
                "DAGSTER_PG_DB": "postgres",
            }

        with started(base, launch) as admin:
            yield create_database(admin, DATABASE)
    finally:
        shutil.rmtree(base, ignore_errors=True)
