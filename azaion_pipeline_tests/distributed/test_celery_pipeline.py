"""full_pipeline_job on the Celery executor: two workers as if on two machines, no shared disk.

Real parts only: a RabbitMQ broker, SeaweedFS as the pipeline store, the reference API and CDN,
a Dagster instance on a real PostgreSQL (``configs/dagster.postgres.yaml``, as across hosts) that
the launcher and both workers use. The ``cpu`` worker's Azaion root holds the annotations; the
``gpu`` worker's root starts empty, as does the launcher's. The run launches from the CLI the way
a user would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from azaion_pipeline.devserver import stack
from azaion_pipeline.lib.classes import ClassCatalog
from azaion_pipeline.lib.hashing import sha256_file
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.sample_data import generate_sample_data
from azaion_pipeline.lib.settings import load_settings
from azaion_pipeline.services import rabbitmq
from azaion_pipeline.services.seaweedfs import S3Server

pytestmark = pytest.mark.slow
DAGSTER_YAML = "dagster.yaml"

WORKTREE = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GPU_WORKER, CPU_WORKER = "gpu-worker@gpu-host", "cpu-worker@cpu-host"
RUN_CONFIG = {
    "ops": {
        "raw_annotations": {"config": {"workers": 1}},
        "augmented_dataset": {"config": {"variants": 0, "workers": 1}},
        "trained_model": {
            "config": {
                "model": "yolo11n.yaml",
                "epochs": 1,
                "imgsz": 64,
                "batch": 8,
                "workers": 0,
                "plots": False,
            }
        },
        "model_evaluation_promotion_gate": {"config": {"tolerance": 0.01, "floor": 0.0}},
        "onnx_model": {"config": {"max_batch": 2}},
    }
}
INGEST_AND_TRAIN = "raw_annotations,augmented_dataset,training_dataset,trained_model"


@pytest.fixture(scope="module")
def broker() -> Iterator[rabbitmq.RabbitMQNode]:
    with rabbitmq.running() as node:
        yield node


@pytest.fixture(scope="module")
def services() -> Iterator[dict[str, str]]:
    with stack.running() as env:
        yield env


class Cluster:
    """Two workers and a launcher, each with its own Azaion root, sharing broker, store, instance."""

    def __init__(self, base: Path, broker, services: dict, s3: S3Server, prefix: str, pg_env: dict):
        self.base = base
        self.dagster_home = base / "dagster_home"
        self.dagster_home.mkdir()
        shutil.copyfile(
            WORKTREE / "configs" / "dagster.postgres.yaml", self.dagster_home / DAGSTER_YAML
        )
        self.roots = {name: base / f"root-{name}" for name in ("cpu", "gpu", "launcher")}
        self.env = {
            **os.environ,
            **services,
            **pg_env,
            "PYTHONPATH": str(WORKTREE),
            "YOLO_OFFLINE": "1",
            "DAGSTER_HOME": str(self.dagster_home),
            "AZAION_EXECUTOR": "celery",
            "AZAION_CELERY_BROKER_URL": broker.amqp_url,
            "AZAION_STORE_ENDPOINT": s3.endpoint,
            "AZAION_STORE_BUCKET": s3.buckets[0],
            "AZAION_STORE_ACCESS_KEY": s3.uploader.access_key,
            "AZAION_STORE_SECRET_KEY": s3.uploader.secret_key,
            "AZAION_STORE_PREFIX": prefix,
            "AZAION_TRAIN_DEVICE": "cpu",
            "AZAION_TRAIN_WORKERS": "0",
        }
        self.workers: dict[str, subprocess.Popen] = {}
        self.config = str(base / "run.yaml")
        Path(self.config).write_text(yaml.safe_dump(RUN_CONFIG))

    def env_of(self, root: str) -> dict[str, str]:
        return {**self.env, "AZAION_ROOT_DIR": str(self.roots[root])}

    def start_workers(self) -> None:
        for queue, name in (("gpu", GPU_WORKER), ("cpu", CPU_WORKER)):
            log = open(self.base / f"worker-{queue}.log", "wb")  # noqa: SIM115 (lives with the worker)
            self.workers[queue] = subprocess.Popen(
                [str(BIN / "azaion-pipeline"), "worker", "--queue", queue, "--name", name],
                env=self.env_of(queue),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop_workers(self) -> None:
        for process in self.workers.values():
            process.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        for process in self.workers.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def launch(self, *args: str) -> None:
        """A run launched from the CLI on the launcher's (empty) root; fails with the logs."""
        result = subprocess.run(
            [str(BIN / "dagster"), *args, "-m", "azaion_pipeline.definitions", "-c", self.config],
            env=self.env_of("launcher"),
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if result.returncode != 0:
            logs = "\n".join(
                f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                for p in sorted(self.base.glob("worker-*.log"))
            )
            pytest.fail(f"run failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}\n{logs}")

    def node_objects(self, root: str) -> set[str]:
        objects = self.roots[root] / "node-cache" / "objects" / "sha256"
        return {p.name for p in objects.glob("*/*")} if objects.exists() else set()


def dataset_objects(layout: AzaionLayout) -> set[str]:
    """sha256 of every image and label under data/ (what a version of it holds: no variants)."""
    return {sha256_file(p) for p in layout.data.glob("*/*") if p.is_file()}


def step_workers(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Step key -> the Celery worker that executed it, from the run's engine events."""
    found = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event and event.is_engine_event and event.step_key:
            metadata = event.engine_event_data.metadata or {}
            if "Celery worker" in metadata:
                found[event.step_key] = metadata["Celery worker"].value
    return found


def test_full_pipeline_on_two_workers_without_a_shared_disk(
    tmp_path, broker, services, s3_server, pg_env
):
    cluster = Cluster(tmp_path, broker, services, s3_server, "e2e/", pg_env)
    catalog = ClassCatalog.load(load_settings().resolved_classes_file())
    cpu_layout = AzaionLayout.under(cluster.roots["cpu"])
    generate_sample_data(cpu_layout, catalog, 16, seed=11, size=(64, 64))
    cluster.start_workers()
    try:
        cluster.launch("job", "execute", "-j", "full_pipeline_job")
        with dg.DagsterInstance.from_config(str(cluster.dagster_home)) as instance:
            [run] = instance.get_runs()
            assert run.status == dg.DagsterRunStatus.SUCCESS
            workers = step_workers(instance, run.run_id)
            assert workers["trained_model"] == GPU_WORKER
            assert workers["tensorrt_model"] == GPU_WORKER
            for step in ("raw_annotations", "training_dataset", "onnx_model", "published_model"):
                assert workers[step] == CPU_WORKER
            first = cluster.node_objects("gpu")
        assert not list(cluster.dagster_home.rglob("*.db"))  # the instance is PostgreSQL only

        # The GPU host never saw the Azaion root: it trained on its synced node cache and
        # its weights reached the CPU host (exports, publishing) through the store.
        gpu_root = cluster.roots["gpu"]
        assert not (gpu_root / "data").exists() and not (gpu_root / "datasets").exists()
        assert list(gpu_root.glob("models/weights/*/best.pt"))
        assert not (cluster.roots["cpu"] / "models" / "weights").exists()
        assert list(cluster.roots["cpu"].glob("node-cache/files/*/best.pt"))
        assert (cluster.roots["cpu"] / "models" / "champion.json").exists()
        assert first == dataset_objects(cpu_layout)  # the version's objects, nothing else

        # The dataset grows by 4 annotations: the GPU host pulls exactly their new objects.
        generate_sample_data(cpu_layout, catalog, 4, seed=12, size=(64, 64))
        new_objects = dataset_objects(cpu_layout) - first
        assert new_objects
        cluster.launch("asset", "materialize", "--select", INGEST_AND_TRAIN)
        second = cluster.node_objects("gpu")
        assert second - first == new_objects
        with dg.DagsterInstance.from_config(str(cluster.dagster_home)) as instance:
            latest = instance.get_runs(limit=1)[0]
            assert step_workers(instance, latest.run_id)["trained_model"] == GPU_WORKER
            # The step's own log says the same: what it downloaded, of what the version holds.
            [synced] = [
                r.user_message
                for r in instance.all_logs(latest.run_id)
                if r.step_key == "trained_model" and "synced into" in r.user_message
            ]
            assert f"downloaded {len(new_objects)} of {len(second)} objects" in synced
    finally:
        cluster.stop_workers()
