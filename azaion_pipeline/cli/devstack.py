"""``azaion-pipeline devstack``: the reference Azaion API, a local S3 server and RabbitMQ on loopback.

Prints the environment to use (``export`` lines, or writes them to ``--env-file``) and serves
until interrupted. Every credential and key is freshly generated for this run.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import threading
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "devstack",
        help="run the local API + S3 + RabbitMQ and print the environment",
        description=__doc__,
    )
    parser.add_argument("--dir", type=Path, help="keep API users and storage here (default: temp)")
    parser.add_argument("--env-file", type=Path, help="also write the variables to this file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from azaion_pipeline.devserver.stack import running

    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
    # SIGTERM stops it like Ctrl-C, so the broker (its own process group) is stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with running(args.dir, with_broker=True) as env:
        lines = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
        if args.env_file:
            args.env_file.touch(mode=0o600)
            args.env_file.write_text("\n".join(lines) + "\n")
        print("\n".join(lines), flush=True)
        print("# serving; Ctrl-C stops", flush=True)
        threading.Event().wait()
    return 0
