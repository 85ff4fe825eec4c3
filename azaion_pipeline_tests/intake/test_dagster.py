"""Dagster side of the intake: a sealed batch becomes exactly one run that records it (counts,
lag) and ingests it."""

from __future__ import annotations

import dagster as dg

from azaion_pipeline.defs.automation.resources import LandingResource
from azaion_pipeline.defs.automation.sensors import new_annotations_sensor
from azaion_pipeline.defs.dataset.augmented_dataset import augmented_dataset
from azaion_pipeline.defs.dataset.checks import (
    every_split_non_empty,
    labels_in_range,
    no_near_twins_across_splits,
)
from azaion_pipeline.defs.dataset.raw_annotations import raw_annotations
from azaion_pipeline.defs.dataset.training_dataset import training_dataset
from azaion_pipeline.defs.intake.assets import annotation_batch, intake_batch_job, intake_batches
from azaion_pipeline.defs.intake.resources import AnnotationStream
from azaion_pipeline.defs.intake.sensors import sealed_batches_sensor
from azaion_pipeline.defs.io import RecordIOManager
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.classes import ClassCatalog
from azaion_pipeline.lib.intake.messages import (
    AnnotationStatus,
    Role,
    Source,
    encode_annotation,
    encode_bulk,
)
from azaion_pipeline.lib.intake.publisher import publish_folder
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.sample_data import generate_sample_data
from azaion_pipeline.lib.settings import PROJECT_ROOT
from azaion_pipeline_tests.intake.conftest import consume, jpeg, send


def _created(i: int, role: Role) -> tuple[bytes, AnnotationStatus]:
    body = encode_annotation(
        name=f"frame-{i}", image=jpeg(i), label_boxes=[(1, 0.5, 0.5, 0.2, 0.2)],
        created_role=role, created_email="private@azaion.local", source=Source.AI,
    )  # fmt: skip
    return body, AnnotationStatus.CREATED


def test_a_sealed_batch_becomes_exactly_one_run_with_its_counts(stream_settings, tmp_path):
    send(
        stream_settings,
        [
            _created(0, Role.OPERATOR),
            _created(1, Role.VALIDATOR),
            _created(2, Role.OPERATOR),
            (encode_bulk(["frame-0"]), AnnotationStatus.VALIDATED),
            (b"not msgpack \xc1", AnnotationStatus.CREATED),
        ],
    )
    consume(stream_settings, tmp_path)
    storage = AzaionStorage(root_dir=str(tmp_path))
    with dg.instance_for_test() as instance:
        tick = sealed_batches_sensor(
            dg.build_sensor_context(instance=instance, resources={"storage": storage})
        )
        assert [r.partition_key for r in tick.run_requests] == ["0-4"]
        assert [r.run_key for r in tick.run_requests] == ["intake-0-4"]
        assert tick.dynamic_partitions_requests[0].partition_keys == ["0-4"]
        # The next tick starts where this one stopped: nothing new, no run.
        again = sealed_batches_sensor(
            dg.build_sensor_context(
                instance=instance, cursor=tick.cursor, resources={"storage": storage}
            )
        )
        assert again.run_requests == [] and again.cursor == tick.cursor

        instance.add_dynamic_partitions(intake_batches.name, ["0-4"])
        s = stream_settings
        result = dg.materialize(
            [annotation_batch],
            partition_key="0-4",
            instance=instance,
            resources={
                "storage": storage,
                "io_manager": RecordIOManager(root_dir=str(tmp_path)),
                "annotation_stream": AnnotationStream(
                    host=s.host, port=s.port, user=s.user,
                    password=s.password.get_secret_value(), queue_name=s.queue_name,
                    consumer_name="azaion-pipeline-intake",
                ),
            },
        )  # fmt: skip
    assert result.success
    metadata = result.asset_materializations_for_node("annotation_batch")[0].metadata
    counts = {key: metadata[key].value for key in ("consumed", "written", "moved", "dead_lettered")}
    assert counts == {"consumed": 5, "written": 3, "moved": 1, "dead_lettered": 1}
    assert metadata["stream_lag"].value == 0
    assert metadata["by_role"].value == {"operator": 2, "validator": 1}
    assert metadata["by_source"].value == {"AI": 3}
    shown = " ".join(str(entry.value) for entry in metadata.values())
    assert "private@azaion.local" not in shown and "frame-" not in shown


def test_a_replayed_batch_id_is_requested_once(tmp_path):
    """After a crash the consumer may seal the same batch id again; one partition, one run."""
    index = tmp_path / "intake" / "batches" / "index"
    index.parent.mkdir(parents=True)
    index.write_text("0-9\n10-19\n10-19\n")
    storage = AzaionStorage(root_dir=str(tmp_path))
    with dg.instance_for_test() as instance:
        tick = sealed_batches_sensor(
            dg.build_sensor_context(instance=instance, resources={"storage": storage})
        )
        assert [r.run_key for r in tick.run_requests] == ["intake-0-9", "intake-10-19"]
        index.write_text(index.read_text() + "20-2")  # a torn append: not taken yet
        later = sealed_batches_sensor(
            dg.build_sensor_context(
                instance=instance, cursor=tick.cursor, resources={"storage": storage}
            )
        )
        assert later.run_requests == [] and later.cursor == tick.cursor


def _tick(sensor, instance, resources: dict, cursor: str | None = None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return sensor(context)


def test_a_sensor_tick_turns_a_sealed_batch_into_one_run_that_ingests_it(stream_settings, tmp_path):
    """Sample annotations come through the stream; one tick, one run, the batch in the dataset."""
    catalog = ClassCatalog.load(PROJECT_ROOT / "configs" / "classes.json")
    outbox, root = AzaionLayout.under(tmp_path / "outbox"), tmp_path / "azaion"
    sample = generate_sample_data(outbox, catalog, 24, size_range=((64, 48), (128, 96)))
    publish_folder(outbox.root, stream_settings, email="private@azaion.local")
    consume(stream_settings, root)
    s = stream_settings
    storage = AzaionStorage(root_dir=str(root))
    resources = {
        "storage": storage,
        "io_manager": RecordIOManager(root_dir=str(root)),
        "annotation_stream": AnnotationStream(
            host=s.host, port=s.port, user=s.user, password=s.password.get_secret_value(),
            queue_name=s.queue_name, consumer_name="azaion-pipeline-intake",
        ),
        "landing": LandingResource(quiet_seconds=0),
    }  # fmt: skip
    location = dg.Definitions(
        assets=[annotation_batch, raw_annotations, augmented_dataset, training_dataset],
        asset_checks=[no_near_twins_across_splits, every_split_non_empty, labels_in_range],
        jobs=[intake_batch_job],
        resources=resources,
    )
    with dg.instance_for_test() as instance:
        tick = _tick(sealed_batches_sensor, instance, resources)
        [request] = tick.run_requests
        instance.add_dynamic_partitions(intake_batches.name, [request.partition_key])
        result = location.resolve_job_def(
            request.job_name or intake_batch_job.name
        ).execute_in_process(
            partition_key=request.partition_key, tags=request.tags, instance=instance
        )
        assert result.success
        # The folder watcher leaves a stream-fed tree alone: no second run for the same files.
        folders = _tick(new_annotations_sensor, instance, resources)
        assert folders.run_requests == []
        again = _tick(sealed_batches_sensor, instance, resources, tick.cursor)
        assert again.run_requests == []
        assert len(instance.get_runs()) == 1
    batch = result.asset_materializations_for_node("annotation_batch")[0].metadata
    assert batch["written"].value == len(sample.valid) + len(sample.seed)
    raw = result.asset_materializations_for_node("raw_annotations")[0].metadata
    assert raw["accepted_now"].value == len(sample.valid)  # data/ only: seed awaits validation
    assert result.asset_materializations_for_node("training_dataset")
