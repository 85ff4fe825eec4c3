"""``azaion-pipeline demo``: sample data, then every asset of the code location, end to end.

The sample data arrives as Azaion's would: published onto the annotation stream of a local
RabbitMQ node, consumed into the Azaion root, and each sealed batch recorded as a partition
of ``annotation_batch``. Runs on the persistent Dagster instance in ``DAGSTER_HOME`` (default
``./.dagster_home``), so the runs and their metadata show up later in ``make dev``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

import yaml

from azaion_pipeline.cli.dev import gpu_count, instance_kind, local_services, prepare_dagster_home
from azaion_pipeline.lib.classes import ClassCatalog
from azaion_pipeline.lib.layout import IMAGES, AzaionLayout
from azaion_pipeline.lib.sample_data import generate_sample_data
from azaion_pipeline.lib.settings import configs_dir, load_settings

SUMMARY_VALUES_PER_ASSET = 9
INTAKE_GROUP = "intake"
CONSUME_UNTIL_IDLE_S = 2.0


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


def feed_through_stream(layout: AzaionLayout, images: int, seed: int) -> None:
    """Sample data written where the platform keeps it, published, then consumed into ``layout``."""
    from azaion_pipeline.lib.intake.batches import BatchLog
    from azaion_pipeline.lib.intake.consumer import IntakeConsumer, IntakeSettings, StreamSettings
    from azaion_pipeline.lib.intake.publisher import publish_folder
    from azaion_pipeline.lib.intake.store import AnnotationStore, read_dead_letters

    settings = load_settings()
    catalog = ClassCatalog.load(settings.resolved_classes_file())
    stream = StreamSettings()
    with tempfile.TemporaryDirectory(prefix="azaion-platform-") as outbox:
        report = generate_sample_data(
            AzaionLayout.under(outbox), catalog, images=images, seed=seed, with_defects=True
        )
        published = publish_folder(Path(outbox), stream, email="demo@azaion.local")
    print(
        f"sample data: {len(report.valid) + len(report.seed)} annotations and "
        f"{sum(map(len, report.defects.values()))} defective pairs; published "
        f"{sum(published.published.values())} onto {stream.queue_name} "
        f"({len(published.skipped)} had no label a platform could send)"
    )
    consumer = IntakeConsumer(
        AnnotationStore(layout),
        BatchLog(layout),
        stream,
        IntakeSettings(),
        until_idle_s=CONSUME_UNTIL_IDLE_S,
    )
    consumed = asyncio.run(consumer.run())
    print(
        f"consumed {consumed.consumed} messages into {layout.root} in {consumed.batches} "
        f"sealed batches; {len(read_dead_letters(layout))} dead letters in "
        f"{layout.intake / 'dead-letter'}"
    )


def run(args: argparse.Namespace) -> int:
    import dagster as dg

    from azaion_pipeline.lib.intake.batches import BatchLog

    settings = load_settings()
    layout = AzaionLayout.under(
        settings.root_dir, settings.data_dir, settings.data_seed_dir, settings.data_deleted_dir
    )

    # Dagster insists on an absolute DAGSTER_HOME. The same instance config as `make dev`,
    # so the UI shows these runs under the same settings.
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").absolute()
    os.environ["DAGSTER_HOME"] = str(home)
    if not args.config.is_file():
        raise FileNotFoundError(f"run config {args.config} does not exist")
    run_config = yaml.safe_load(args.config.read_text()) or {}

    # The reference Azaion API, S3 (SeaweedFS) and RabbitMQ, for this run only (and a
    # PostgreSQL when AZAION_INSTANCE=postgres names no server).
    kind = instance_kind()
    with local_services(enabled=True, kind=kind) as service_env:
        # Resources read their secrets through dg.EnvVar when the run starts.
        os.environ.update(service_env)
        prepare_dagster_home(home, gpu_count(), kind)
        batches = BatchLog(layout)
        _, sealed_before = batches.sealed_since(0)
        if _has_data(layout):
            print(f"using the annotations already under {layout.root}")
        else:
            feed_through_stream(layout, args.images, args.seed)
        new_batches, _ = batches.sealed_since(sealed_before)
        from azaion_pipeline.definitions import defs

        demo_job = dg.define_asset_job(
            "demo_job", selection=dg.AssetSelection.all() - dg.AssetSelection.groups(INTAKE_GROUP)
        )
        job = dg.Definitions.merge(defs, dg.Definitions(jobs=[demo_job])).resolve_job_def(
            demo_job.name
        )
        intake_job = defs.resolve_job_def("intake_batch_job")
        # The batch runs ingest too: with the demo's settings for the assets they share.
        intake_config = {
            **run_config,
            "ops": {
                op: stanza
                for op, stanza in run_config.get("ops", {}).items()
                if intake_job.graph.has_node_named(op)
            },
        }
        with dg.DagsterInstance.get() as instance:
            # One partition and run per sealed batch, as sealed_batches_sensor does in `make dev`.
            instance.add_dynamic_partitions("intake_batches", list(dict.fromkeys(new_batches)))
            for batch_id in dict.fromkeys(new_batches):
                print_summary(
                    intake_job.execute_in_process(
                        run_config=intake_config,
                        partition_key=batch_id,
                        instance=instance,
                        raise_on_error=False,
                    ),
                    home,
                )
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
