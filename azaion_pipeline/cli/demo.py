"""``azaion-pipeline demo``: sample data, then every asset of the code location, end to end.

Runs on the persistent Dagster instance in ``DAGSTER_HOME`` (default ``./.dagster_home``),
so the runs and their metadata show up later in ``make dev``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import yaml

from azaion_pipeline.cli.dev import gpu_count, instance_kind, local_services, prepare_dagster_home
from azaion_pipeline.lib.classes import ClassCatalog
from azaion_pipeline.lib.layout import IMAGES, AzaionLayout
from azaion_pipeline.lib.sample_data import generate_sample_data
from azaion_pipeline.lib.settings import configs_dir, load_settings

SUMMARY_VALUES_PER_ASSET = 9


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="generate sample data and materialise every asset on the local instance",
        description=__doc__,
    )
    parser.add_argument(
        "--images", type=int, default=48, help="sample annotations when the root is empty"
    )
    parser.add_argument("--seed", type=int, default=0, help="sample data seed (default 0)")
    parser.add_argument(
        "--config",
        type=Path,
        default=configs_dir() / "demo.yaml",
        help="run config (ops: {asset: {config: ...}}), default configs/demo.yaml",
    )
    parser.set_defaults(handler=run)


def _has_data(layout: AzaionLayout) -> bool:
    return any(
        (folder / IMAGES).is_dir() and any((folder / IMAGES).iterdir())
        for folder in (layout.data, layout.data_seed)
    )


def run(args: argparse.Namespace) -> int:
    import dagster as dg

    settings = load_settings()
    layout = AzaionLayout.under(
        settings.root_dir, settings.data_dir, settings.data_seed_dir, settings.data_deleted_dir
    )
    if _has_data(layout):
        print(f"using the annotations already under {layout.root}")
    else:
        catalog = ClassCatalog.load(settings.resolved_classes_file())
        report = generate_sample_data(
            layout, catalog, images=args.images, seed=args.seed, with_defects=True
        )
        print(
            f"sample data: {len(report.valid)} annotations in {layout.data}, "
            f"{len(report.seed)} in {layout.data_seed}, "
            f"{sum(map(len, report.defects.values()))} defective pairs to quarantine"
        )

    # Dagster insists on an absolute DAGSTER_HOME. The same instance config as `make dev`,
    # so the UI shows these runs under the same settings.
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").absolute()
    os.environ["DAGSTER_HOME"] = str(home)
    if not args.config.is_file():
        raise FileNotFoundError(f"run config {args.config} does not exist")
    run_config = yaml.safe_load(args.config.read_text()) or {}

    # The reference Azaion API and S3 (SeaweedFS) that publishing talks to, for this run only
    # (and a PostgreSQL when AZAION_INSTANCE=postgres names no server).
    kind = instance_kind()
    with local_services(enabled=True, kind=kind) as service_env:
        # Resources read their secrets through dg.EnvVar when the run starts.
        os.environ.update(service_env)
        prepare_dagster_home(home, gpu_count(), kind)
        from azaion_pipeline.definitions import defs

        job = defs.resolve_implicit_global_asset_job_def()
        with dg.DagsterInstance.get() as instance:
            result = job.execute_in_process(
                run_config=run_config, instance=instance, raise_on_error=False
            )
    print_summary(result, home)
    return 0 if result.success else 1


def _short_values(metadata) -> list[str]:
    """Counts, versions and paths: the values a person reads first."""
    import dagster as dg

    def short(entry) -> bool:
        if isinstance(entry, dg.TextMetadataValue):
            return len(entry.value) <= 80
        return isinstance(entry, dg.PathMetadataValue | dg.IntMetadataValue | dg.FloatMetadataValue)

    shown = [f"{key}={entry.value}" for key, entry in metadata.items() if short(entry)]
    return shown[:SUMMARY_VALUES_PER_ASSET]


def print_summary(result, dagster_home: Path) -> None:
    print(f"\nrun {result.run_id} {'succeeded' if result.success else 'FAILED'}")
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        print(f"  {materialization.asset_key.to_user_string()}")
        for line in _short_values(materialization.metadata):
            print(f"      {line}")
    for evaluation in result.get_asset_check_evaluations():
        state = "passed" if evaluation.passed else "FAILED"
        print(f"  check {evaluation.asset_key.to_user_string()}.{evaluation.check_name}: {state}")
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        print(f"  step {event.step_key} FAILED: {error.message.strip() if error else ''}")
    print(f"Dagster instance: {dagster_home} (browse it with `make dev`)")
