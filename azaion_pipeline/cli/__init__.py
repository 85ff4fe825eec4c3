"""``azaion-pipeline``: the console script. Each sub-command lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

# Modules under azaion_pipeline.cli that each define ``register(subparsers)``; the
# sub-command they register sets ``handler`` to a function taking the parsed args.
COMMAND_MODULES = [
    "sample_data",
    "demo",
    "devstack",
    "fetch_model",
    "rollback",
    "dev",
    "consume",
    "publish_annotations",
    "worker",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="azaion-pipeline", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"azaion_pipeline.cli.{name}").register(subparsers)
    return parser


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the local services a command started are stopped too.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear one-line error for users, not a traceback
        if getattr(args, "debug", False):
            raise
        print(f"azaion-pipeline {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
