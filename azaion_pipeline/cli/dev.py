"""``azaion-pipeline dev``: the local services and the Dagster UI (webserver + daemon) on one host.

Writes ``configs/dagster.yaml`` into ``$DAGSTER_HOME`` (default ``./.dagster_home``) with the
`gpu` pool sized to ``AZAION_GPU_COUNT`` (default 1), starts the reference Azaion API and
S3 (moto) on loopback, and runs ``dagster dev`` with their settings in the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml
from pydantic import ValidationError

from azaion_pipeline.lib.settings import PROJECT_ROOT, PipelineSettings, configs_dir

GPU_POOL = "gpu"
# How long dagster dev gets to stop its webserver, daemon and code servers after a signal.
STOP_GRACE_S = 30.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dev",
        help="start the local services and the Dagster UI",
        description=__doc__,
    )
    parser.add_argument("--host", default="127.0.0.1", help="UI address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="UI port (default 3000)")
    parser.add_argument(
        "--no-services",
        action="store_true",
        help="do not start the reference API and S3 (publishing then needs real ones configured)",
    )
    parser.set_defaults(handler=run)


def gpu_count() -> int:
    """``AZAION_GPU_COUNT`` as the environment says now (read fresh: not the cached settings)."""
    try:
        return PipelineSettings().gpu_count
    except ValidationError as exc:
        problems = [p["msg"] for p in exc.errors() if p["loc"] == ("gpu_count",)]
        if not problems:
            raise
        raise ValueError(f"AZAION_GPU_COUNT: {problems[0]}") from None


def prepare_dagster_home(home: Path, gpus: int) -> Path:
    """Render the instance config into ``home`` and size the `gpu` pool; returns the config path."""
    config = yaml.safe_load((configs_dir() / "dagster.yaml").read_text())
    # dagster.yaml takes no env var for pool limits, so the number is written in here.
    config.setdefault("concurrency", {}).setdefault("pools", {})["default_limit"] = gpus
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    target.write_text(
        "# Written by `azaion-pipeline dev` from configs/dagster.yaml; edit that file instead.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    import dagster as dg

    # The default limit only applies to a pool seen for the first time; set `gpu` explicitly
    # so a changed AZAION_GPU_COUNT takes effect on an existing instance too.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.set_concurrency_slots(GPU_POOL, gpus)
    return target


@contextlib.contextmanager
def local_services(enabled: bool) -> Iterator[dict[str, str]]:
    if not enabled:
        yield {}
        return
    from azaion_pipeline.devserver.stack import running

    with running() as env:
        yield env


def run(args: argparse.Namespace) -> int:
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").absolute()
    gpus = gpu_count()
    prepare_dagster_home(home, gpus)
    dagster = Path(sys.executable).with_name("dagster")
    command = [
        str(dagster), "dev",
        "-w", str(PROJECT_ROOT / "workspace.yaml"),
        "-h", args.host,
        "-p", str(args.port),
    ]  # fmt: skip
    with local_services(not args.no_services) as service_env:
        env = {
            **os.environ,
            **service_env,
            "DAGSTER_HOME": str(home),
            "AZAION_GPU_COUNT": str(gpus),
            "AZAION_UI_URL": os.environ.get("AZAION_UI_URL", f"http://{args.host}:{args.port}"),
        }
        print(f"Dagster UI on http://{args.host}:{args.port} (instance {home}); Ctrl-C stops it")
        # Its own session: a signal to this process alone (SIGTERM from a service manager)
        # still reaches dagster dev, and whatever it leaves behind can be found and stopped.
        process = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, start_new_session=True)
        # Returning leaves the block, which stops the local services after dagster dev.
        return supervise(process)


def supervise(process: subprocess.Popen) -> int:
    """Wait for ``process``; SIGINT and SIGTERM are passed on to it, and anything left in its
    process group after it exits (or after the grace period) is stopped too."""
    stopping: list[int] = []

    def forward(signum: int, _frame) -> None:
        stopping.append(signum)
        _signal_group(process.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                code = process.wait(timeout=STOP_GRACE_S if stopping else None)
                break
            except subprocess.TimeoutExpired:  # it did not stop in time
                _signal_group(process.pid, signal.SIGKILL)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_leftovers(process.pid)
    return 0 if stopping else code


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing of it is left
        os.killpg(group, signum)


def _stop_leftovers(group: int) -> None:
    """SIGTERM, then SIGKILL, to processes still in ``group`` (e.g. an orphaned code server)."""
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    _signal_group(group, signal.SIGKILL)
