"""``azaion-pipeline publish-annotations``: push a folder of annotations onto the stream.

Plays the annotation platform for demos and tests: each pair under ``ROOT/data`` becomes a
Created message by a Validator, each under ``ROOT/data-seed`` one by an Operator (provenance
sidecars, where present, supply the original fields). Uses the ``RABBITMQ_*`` settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "publish-annotations",
        help="publish a folder of annotations onto the stream, as the platform would",
        description=__doc__,
    )
    parser.add_argument(
        "--root", type=Path, required=True, help="an Azaion root (data/, data-seed/)"
    )
    parser.add_argument(
        "--email", default="publisher@azaion.local", help="createdEmail of the messages"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from azaion_pipeline.lib.intake.consumer import StreamSettings
    from azaion_pipeline.lib.intake.publisher import publish_folder

    if not args.root.is_dir():
        raise FileNotFoundError(f"{args.root} is not a folder")
    stream = StreamSettings()
    report = publish_folder(args.root, stream, args.email)
    counts = ", ".join(f"{n} from {area}" for area, n in report.published.items()) or "nothing"
    print(f"published {counts} onto {stream.queue_name} at {stream.host}:{stream.port}")
    for line in report.skipped:
        print(f"  not sent: {line}")
    return 0
