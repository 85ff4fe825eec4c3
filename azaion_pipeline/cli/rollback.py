"""``azaion-pipeline rollback [--version V]``: point "current" back at an earlier published version.

Needs the CDN uploader keys (AZAION_CDN_UPLOADER_KEY/SECRET). Nothing is deleted; a later
rollback (or publish) can move the pointer again.
"""

from __future__ import annotations

import argparse

from azaion_pipeline.lib.client_env import ClientEnv
from azaion_pipeline.lib.distribution import (
    DEFAULT_MODEL_NAME,
    DEFAULT_PREFIX,
    list_versions,
    read_pointer,
    rollback,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rollback", help="move the current-model pointer back", description=__doc__
    )
    parser.add_argument("--version", help="target version (default: the one before current)")
    parser.add_argument("--list", action="store_true", help="only list the published versions")
    parser.add_argument("--model", default=DEFAULT_MODEL_NAME, help="model name (default azaion)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="key prefix (default models)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    env = ClientEnv()
    if args.list:
        store = env.download_store()
        current = read_pointer(store, args.model, args.prefix)
        for version in list_versions(store, args.model, args.prefix):
            print(("* " if current and current.version == version else "  ") + version)
        return 0
    pointer = rollback(env.upload_store(), args.model, args.version, args.prefix)
    print(f"{args.model}: current is now {pointer.version} (model {pointer.model_version})")
    return 0
