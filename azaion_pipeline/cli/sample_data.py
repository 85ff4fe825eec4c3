"""``azaion-pipeline sample-data``: write a synthetic annotated set in the Azaion layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from azaion_pipeline.lib.classes import ClassCatalog
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.sample_data import generate_sample_data
from azaion_pipeline.lib.settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample-data",
        help="write a synthetic annotated set (data/ and a few in data-seed/)",
        description=__doc__,
    )
    parser.add_argument("--root", type=Path, required=True, help="Azaion root to write into")
    parser.add_argument("--images", type=int, required=True, help="valid annotations to write")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--with-defects",
        action="store_true",
        help="also write one bad pair per quarantine reason",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    layout = AzaionLayout.under(args.root)
    catalog = ClassCatalog.load(load_settings().resolved_classes_file())
    report = generate_sample_data(
        layout, catalog, images=args.images, seed=args.seed, with_defects=args.with_defects
    )
    defects = sum(len(names) for names in report.defects.values())
    print(
        f"wrote {len(report.valid)} annotations to {layout.data}, {len(report.seed)} to "
        f"{layout.data_seed}, {defects} defective pairs"
    )
    return 0
