"""``azaion-pipeline fetch-model NAME --out FILE``: what an edge device runs to load a model.

Follows the channel's TUF metadata (pinned root key AZAION_TUF_ROOT_PUBLIC_KEY; trusted state in
AZAION_DEVICE_STATE_DIR) and refuses a rollback, frozen (expired) or mixed metadata. Downloads
``.big`` from the CDN (downloader keys, never past its signed length) and ``.small`` from the API
(bound to this machine's hardware), verifies the Ed25519 manifest (AZAION_SIGNING_PUBLIC_KEY) and
every hash, decrypts with AZAION_MODEL_KEY, and only then writes FILE. On any failure nothing is
written; what a killed run left behind is removed by the next one.
Beside FILE it writes FILE.json: the per-class confidence thresholds and the evaluation summary
from the signed manifest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from azaion_pipeline.lib.client_env import ClientEnv
from azaion_pipeline.lib.distribution import DEFAULT_MODEL_NAME, DEFAULT_PREFIX
from azaion_pipeline.lib.edge_fetch import fetch_current
from azaion_pipeline.lib.release_manifest import write_sidecar
from azaion_pipeline.lib.tuf_repo import CHANNELS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fetch-model", help="download, verify and decrypt a published model", description=__doc__
    )
    parser.add_argument("name", help="published file name, e.g. azaion.onnx")
    parser.add_argument("--out", type=Path, required=True, help="where to write the model")
    parser.add_argument(
        "--channel", choices=CHANNELS, default="stable", help="release channel (default stable)"
    )
    parser.add_argument("--model", default=DEFAULT_MODEL_NAME, help="model name (default azaion)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="key prefix (default models)")
    parser.add_argument("--state-dir", type=Path, help="default AZAION_DEVICE_STATE_DIR")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    env = ClientEnv()
    env.require("model_key", "signing_public_key", "tuf_root_public_key")
    result = fetch_current(
        env.api_client(),
        env.download_store(),
        state_dir=args.state_dir or env.device_state_dir,
        model_name=args.model,
        channel=args.channel,
        file_name=args.name,
        out=args.out,
        model_secret=env.model_key.get_secret_value(),
        public_key=env.signing_public_key,
        root_public_key=env.tuf_root_public_key,
        prefix=args.prefix,
    )
    for path in result.stale_removed:
        print(f"removed {path}, left behind by an interrupted fetch")
    if result.manifest is None:
        print(f"offline: kept {args.out} ({args.model} {result.version}) within the signed grace")
        return 0
    manifest = result.manifest
    sidecar = write_sidecar(args.out, manifest)
    print(
        f"wrote {args.out} ({manifest.plaintext.size} bytes, sha256 {manifest.plaintext.sha256}) "
        f"from {args.model} {args.channel} {manifest.version} (model {manifest.model_version}); "
        f"thresholds and evaluation in {sidecar}"
    )
    return 0
