"""``azaion-pipeline fetch-model NAME --out FILE``: what an edge device runs to load a model.

Downloads ``.big`` from the CDN (downloader keys) and ``.small`` from the API (bound to this
machine's hardware), verifies the Ed25519 signature (AZAION_SIGNING_PUBLIC_KEY, pinned) and every
hash, decrypts with AZAION_MODEL_KEY, and only then writes FILE. On any failure nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from azaion_pipeline.lib.client_env import ClientEnv
from azaion_pipeline.lib.distribution import DEFAULT_MODEL_NAME, DEFAULT_PREFIX, fetch_artifact


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fetch-model", help="download, verify and decrypt a published model", description=__doc__
    )
    parser.add_argument("name", help="published file name, e.g. azaion.onnx")
    parser.add_argument("--out", type=Path, required=True, help="where to write the model")
    parser.add_argument("--version", help="a published version (default: the current one)")
    parser.add_argument("--model", default=DEFAULT_MODEL_NAME, help="model name (default azaion)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="key prefix (default models)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    env = ClientEnv()
    env.require("model_key", "signing_public_key")
    manifest = fetch_artifact(
        env.api_client(),
        env.download_store(),
        model_name=args.model,
        file_name=args.name,
        out=args.out,
        model_secret=env.model_key.get_secret_value(),
        public_key=env.signing_public_key,
        version=args.version,
        prefix=args.prefix,
    )
    print(
        f"wrote {args.out} ({manifest.plaintext.size} bytes, sha256 {manifest.plaintext.sha256}) "
        f"from {args.model} {manifest.version} (model {manifest.model_version})"
    )
    return 0
