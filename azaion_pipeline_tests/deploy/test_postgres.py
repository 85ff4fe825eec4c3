"""Dagster on PostgreSQL for real: configs/dagster.postgres.yaml on a server from Debian's
package, the whole pipeline on it, and the daemon ticking the sensor and the schedule."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
import psycopg2
import pytest
import yaml

from azaion_pipeline.cli.dev import local_services, prepare_dagster_home
from azaion_pipeline.devserver.stack import running
from azaion_pipeline.lib.classes import ClassCatalog
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.sample_data import generate_sample_data
from azaion_pipeline.lib.settings import PROJECT_ROOT, load_settings
from azaion_pipeline.services.postgres import DEFAULT_OS_USER
from azaion_pipeline.services.processes import process_group

DAEMON_TIMEOUT_S = 420


def rows(env: dict[str, str], query: str, *args) -> list[tuple]:
    """Straight from the database, not through Dagster: proof of where the data is."""
    connection = psycopg2.connect(
        host=env["DAGSTER_PG_HOST"],
        port=int(env["DAGSTER_PG_PORT"]),
        user=env["DAGSTER_PG_USERNAME"],
        password=env["DAGSTER_PG_PASSWORD"],
        dbname=env["DAGSTER_PG_DB"],
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(query, args)
            return cursor.fetchall()
    finally:
        connection.close()


def test_the_server_runs_unprivileged_on_loopback(postgres_server):
    port = int(postgres_server["DAGSTER_PG_PORT"])
    [server] = [
        process
        for process in psutil.process_iter(["cmdline", "username"])
        if (process.info["cmdline"] or [""])[0].endswith("/postgres")
        and f"port={port}" in process.info["cmdline"]
    ]
    expected = DEFAULT_OS_USER if os.geteuid() == 0 else psutil.Process().username()
    assert server.info["username"] == expected
    listening = {c.laddr for c in server.net_connections("inet") if c.status == psutil.CONN_LISTEN}
    assert {(address.ip, address.port) for address in listening} == {("127.0.0.1", port)}
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        rows({**postgres_server, "DAGSTER_PG_PASSWORD": "wrong"}, "SELECT 1")


def test_the_postgres_instance_config_keeps_runs_and_the_gpu_pool_in_postgres(tmp_path, pg_env):
    prepare_dagster_home(tmp_path, gpus=2, kind="postgres")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        run = instance.add_run(
            dg.DagsterRun(job_name="probe", status=dg.DagsterRunStatus.NOT_STARTED)
        )
    assert rows(pg_env, "SELECT pipeline_name, status FROM runs WHERE run_id = %s", run.run_id) == [
        ("probe", "NOT_STARTED")
    ]
    assert rows(
        pg_env, "SELECT count(*) FROM concurrency_slots WHERE concurrency_key = %s", "gpu"
    ) == [(2,)]
    # Nothing of the instance went to SQLite files under DAGSTER_HOME.
    assert not list(tmp_path.rglob("*.db"))


def azaion_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("azaion-pipeline")
    return subprocess.run([str(script), *args], env=env, capture_output=True, text=True)


def wait_for(what: str, probe, timeout_s: float = DAEMON_TIMEOUT_S, daemon=None):
    deadline = time.monotonic() + timeout_s
    while (found := probe()) is None:
        if daemon is not None:
            daemon.check_alive()
        assert time.monotonic() < deadline, f"no {what} after {timeout_s:.0f} s"
        time.sleep(2)
    return found


def runs_of(instance: dg.DagsterInstance, tag: str, name: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={tag: name})))


def dataset_versions_by_run(instance: dg.DagsterInstance) -> dict[str, str]:
    """training_dataset's version as the schedule reads it, for every run that made one."""
    records = instance.fetch_materializations(dg.AssetKey("training_dataset"), limit=100).records
    return {r.run_id: r.asset_materialization.metadata["dataset_version"].value for r in records}


@pytest.mark.slow
def test_full_pipeline_then_the_daemon_ticks_the_sensor_and_the_schedule(tmp_path, pg_env):
    home, root = tmp_path / "home", tmp_path / "azaion"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "AZAION_INSTANCE": "postgres",
        "AZAION_ROOT_DIR": str(root),
        "YOLO_OFFLINE": "1",
    }
    # 1. The whole pipeline (`azaion-pipeline demo`: every asset, tiny training, exports,
    # publishing to the local API and S3) on the PostgreSQL instance. The annotations are in the
    # folders beforehand, so this root is folder-fed: new_annotations_sensor watches it (a
    # stream-fed root is sealed_batches_sensor's, tested in intake/).
    layout = AzaionLayout.under(root)
    catalog = ClassCatalog.load(load_settings().resolved_classes_file())
    generate_sample_data(layout, catalog, 32, 0)
    demo = azaion_cli("demo", "--images", "32", env=env)
    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
    # The demo's own job.
    [(demo_run,)] = rows(
        pg_env, "SELECT run_id FROM runs WHERE status = 'SUCCESS' AND pipeline_name = 'demo_job'"
    )
    materialized = {
        key
        for (key,) in rows(
            pg_env,
            "SELECT DISTINCT asset_key FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            demo_run,
        )
    }
    assert {'["training_dataset"]', '["trained_model"]', '["published_model"]'} <= materialized

    # 2. New annotations arrive; the real daemon ticks the sensor (ingest run) and the schedule
    # (retrain run). Retrain runs are held in the queue by a limit of 0 added for this test:
    # production training defaults take hours on a CPU, and the tick is what is tested.
    generate_sample_data(layout, catalog, 6, 7)
    config_path = home / "dagster.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["concurrency"]["runs"]["tag_concurrency_limits"].append(
        {"key": "azaion/job", "value": "retrain", "limit": 0}
    )
    config_path.write_text(yaml.safe_dump(config))
    daemon_settings = {
        "AZAION_SENSOR_INTERVAL_SECONDS": "2",
        "AZAION_LANDING_QUIET_SECONDS": "0",
        "AZAION_RETRAIN_CRON": "* * * * *",
        "AZAION_AUTOMATION_RUNNING": "true",
    }
    daemon_command = [
        str(Path(sys.executable).with_name("dagster-daemon")),
        "run",
        "-w",
        str(PROJECT_ROOT / "workspace.yaml"),
    ]
    # The daemon's runs publish, so they get the local API and S3 the way `make dev` gives them.
    with (
        running() as services,
        process_group(tmp_path) as daemon,
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        daemon_env = {**env, **services, **daemon_settings}
        daemon.start("dagster-daemon", daemon_command, env=daemon_env, cwd=PROJECT_ROOT)

        def ingest_done():
            runs = runs_of(instance, "dagster/sensor_name", "new_annotations_sensor")
            done = [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
            failed = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
            assert not failed, f"ingest run {failed[0].run_id} failed"
            return done[0] if done else None

        ingest = wait_for("ingest run from a sensor tick", ingest_done, daemon=daemon)
        assert ingest.job_name == "ingest_job"

        def retrain_requested():
            runs = runs_of(instance, "dagster/schedule_name", "retrain_schedule")
            # The scheduler creates the run, then submits it to the queue.
            submitted = [r for r in runs if r.status != dg.DagsterRunStatus.NOT_STARTED]
            return submitted[0] if submitted else None

        retrain = wait_for("retrain run from a schedule tick", retrain_requested, daemon=daemon)
        versions = dataset_versions_by_run(instance)
        ingests = runs_of(instance, "dagster/sensor_name", "new_annotations_sensor")
    assert retrain.job_name == "retrain_job"
    assert retrain.status == dg.DagsterRunStatus.QUEUED
    # It retrains on a dataset a sensor-launched ingest made, not the one the demo trained on.
    from_sensor = {versions[r.run_id] for r in ingests if r.run_id in versions}
    assert retrain.tags["azaion/dataset_version"] in from_sensor
    assert retrain.tags["azaion/dataset_version"] != versions[demo_run]


def test_dev_starts_its_own_postgres_when_no_server_is_named(tmp_path, monkeypatch):
    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB"):
        monkeypatch.delenv(name, raising=False)
    with local_services(enabled=False, kind="postgres") as env:
        assert env["DAGSTER_PG_HOST"] == "127.0.0.1"
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        prepare_dagster_home(tmp_path, gpus=1, kind="postgres")
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1
    # The session's server is gone with it.
    with pytest.raises(psycopg2.OperationalError):
        rows(env, "SELECT 1")
