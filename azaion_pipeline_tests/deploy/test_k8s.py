"""Kubernetes, the other documented path: the instance config loads, and the training pod the
step would submit asks for the GPU and takes its secrets by reference."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import dagster as dg
import pytest
from dagster_k8s.pipes import build_pod_body
from kubernetes.client import ApiClient
from kubernetes.config import incluster_config
from pydantic import ValidationError

from azaion_pipeline.defs.training.k8s import (
    GPU_RESOURCE,
    MAX_RUNTIME_TAG,
    K8sTrainingClient,
    K8sTrainingSettings,
)
from azaion_pipeline.lib.settings import configs_dir


@pytest.fixture
def inside_a_pod(tmp_path, monkeypatch):
    """What a pod's service account gives a process (a token and the cluster CA), no cluster."""
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("service-account-token")
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("DAGSTER_K8S_NAMESPACE", "azaion")


def test_the_kubernetes_instance_config_loads_on_postgres(tmp_path, pg_env, inside_a_pod):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(configs_dir() / "dagster.k8s.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "K8sRunLauncher"
        assert launcher.job_namespace == "azaion"
        assert launcher.env_secrets == ["azaion-pipeline-secrets"]
        assert launcher.postgres_password_secret == "dagster-postgresql-secret"
        assert [v["persistentVolumeClaim"]["claimName"] for v in launcher.volumes] == [
            "azaion-data"
        ]
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        run = instance.add_run(dg.DagsterRun(job_name="probe"))
        assert instance.get_run_by_id(run.run_id).job_name == "probe"
        assert instance.run_monitoring_enabled
        assert instance.run_retries_enabled


def pod_the_step_submits(client: K8sTrainingClient, command: list[str]) -> dict:
    """dagster-k8s's own pod builder, fed what K8sTrainingClient.run passes it."""
    pod = build_pod_body(
        pod_name="dagster-run-trained-model",
        image=client.settings.image,
        command=command,
        env_vars={"DAGSTER_PIPES_CONTEXT": "context", "DAGSTER_PIPES_MESSAGES": "messages"},
        base_pod_meta=None,
        base_pod_spec=client.base_pod_spec(),
    )
    return ApiClient().sanitize_for_serialization(pod)


def test_the_training_pod_gets_the_gpus_and_secret_references_only(monkeypatch):
    secret_value = "do-not-inline-this-secret"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_value)
    settings = K8sTrainingSettings(image="registry.local/azaion-pipeline:1", gpus=2)
    client = K8sTrainingClient(settings, azaion_root="/azaion")
    command = ["python", "-m", "azaion_pipeline.lib.train_worker"]
    pod = pod_the_step_submits(client, command)

    [container] = pod["spec"]["containers"]
    assert container["image"] == "registry.local/azaion-pipeline:1"
    assert container["command"] == command
    assert container["resources"]["limits"] == {GPU_RESOURCE: "2"}
    assert container["resources"]["requests"] == {GPU_RESOURCE: "2"}
    secrets = {e["name"]: e for e in container["env"] if "valueFrom" in e}
    assert set(secrets) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    for name, entry in secrets.items():
        assert entry["valueFrom"] == {
            "secretKeyRef": {"name": "azaion-pipeline-secrets", "key": name}
        }
        assert "value" not in entry
    assert secret_value not in json.dumps(pod)
    assert container["volumeMounts"] == [{"name": "azaion-data", "mountPath": "/azaion"}]
    assert pod["spec"]["volumes"] == [
        {"name": "azaion-data", "persistentVolumeClaim": {"claimName": "azaion-data"}}
    ]
    assert pod["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pod_wait_timeout_s": 72 * 3600}, "must be below"),
        ({"gpus": 0}, "greater than or equal to 1"),
        ({"max_runtime_s": 60}, "greater than or equal to 3600"),
    ],
)
def test_training_limits_are_bounded(overrides, message):
    with pytest.raises(ValidationError, match=message):
        K8sTrainingSettings(image="x", **overrides)


def test_the_k8s_backend_wires_the_client_the_pool_and_the_max_runtime():
    probe = """
import json
from azaion_pipeline.definitions import defs
from azaion_pipeline.defs.training.k8s import K8sTrainingClient
repo = defs.get_repository_def()
client = defs.resources["training_pipes_client"]
print(json.dumps({
    "client": isinstance(client, K8sTrainingClient),
    "wait": client.settings.pod_wait_timeout_s,
    "pool": repo.assets_defs_by_key[__import__("dagster").AssetKey("trained_model")].op.pool,
    "tags": {job: dict(repo.get_job(job).tags) for job in ("retrain_job", "full_pipeline_job", "ingest_job")},
}))
"""
    env = {
        **os.environ,
        "AZAION_TRAINING_BACKEND": "k8s",
        "AZAION_K8S_IMAGE": "registry.local/azaion-pipeline:1",
        "AZAION_K8S_MAX_RUNTIME_S": "7200",
        "AZAION_K8S_POD_WAIT_TIMEOUT_S": "7000",
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    wired = json.loads(done.stdout.strip().splitlines()[-1])
    assert wired["client"] is True
    assert wired["wait"] == 7000
    assert wired["pool"] == "gpu"
    assert wired["tags"]["retrain_job"][MAX_RUNTIME_TAG] == "7200"
    assert wired["tags"]["full_pipeline_job"][MAX_RUNTIME_TAG] == "7200"
    assert MAX_RUNTIME_TAG not in wired["tags"]["ingest_job"]  # no training in it
