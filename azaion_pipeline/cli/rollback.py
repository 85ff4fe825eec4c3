"""``azaion-pipeline rollback [--channel C] [--version V | --list]``: serve an earlier release again.

Signs NEW, higher-version TUF metadata for the channel whose targets are the earlier release's
objects, so devices that already had the newer release accept it. Needs the CDN uploader keys and
the AZAION_TUF_*_KEY signing keys. Nothing is deleted. Also the ``rollback`` job.
"""

from __future__ import annotations

import argparse

from azaion_pipeline.lib.channels import rollback_channel, served_version
from azaion_pipeline.lib.client_env import ClientEnv
from azaion_pipeline.lib.distribution import DEFAULT_MODEL_NAME, DEFAULT_PREFIX, list_versions
from azaion_pipeline.lib.tuf_repo import CHANNELS, read_targets


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rollback", help="serve an earlier release on a channel", description=__doc__
    )
    parser.add_argument("--channel", choices=CHANNELS, default="stable")
    parser.add_argument("--version", help="target version (default: the one served before)")
    parser.add_argument("--list", action="store_true", help="only list the complete releases")
    parser.add_argument("--model", default=DEFAULT_MODEL_NAME, help="model name (default azaion)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="key prefix (default models)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    env = ClientEnv()
    if args.list:
        store = env.download_store()
        served = {
            channel: served_version(read_targets(store, args.model, channel, args.prefix))
            for channel in CHANNELS
        }
        for version in list_versions(store, args.model, args.prefix):
            marks = ",".join(channel for channel, v in served.items() if v == version)
            print(f"{version}  {marks}".rstrip())
        return 0
    move = rollback_channel(env.tuf_repository(args.model, args.channel, args.prefix), args.version)
    print(f"{args.model} {move.channel}: now {move.version} (was {move.previous})")
    return 0
