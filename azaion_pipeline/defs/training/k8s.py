"""Training in a Kubernetes GPU pod: the other way, besides Celery workers, to train off the host.

``AZAION_TRAINING_BACKEND=k8s`` binds ``training_pipes_client`` to :class:`K8sTrainingClient`,
which submits the same worker command through dagster-k8s's ``PipesK8sClient`` in a pod that
requests and is limited to ``AZAION_K8S_GPUS`` ``nvidia.com/gpu``, mounts the Azaion root's
volume claim at the same path, and takes its secrets from a Kubernetes Secret by reference.
``trained_model`` keeps its ``gpu`` pool; runs that train carry ``dagster/max_runtime`` so
run monitoring ends a stuck training, and the client stops waiting on its pod before that.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

import dagster as dg
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from azaion_pipeline.lib.settings import load_settings

MAX_RUNTIME_TAG = "dagster/max_runtime"
GPU_RESOURCE = "nvidia.com/gpu"
HOUR_S = 3600


class TrainingBackendSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AZAION_", extra="ignore")

    training_backend: Literal["subprocess", "k8s"] = Field(
        default="subprocess", description="Where trained_model's worker runs: here, or in a pod."
    )


class K8sTrainingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AZAION_K8S_", extra="ignore")

    image: str = Field(description="Image with this package installed (the code location's).")
    namespace: str | None = Field(
        default=None, description="Namespace of the pod (default: the run's own)."
    )
    gpus: int = Field(default=1, ge=1, le=16, description="nvidia.com/gpu requested and limited.")
    secret: str = Field(
        default="azaion-pipeline-secrets",
        description="Kubernetes Secret the pod's secrets come from.",
    )
    secret_env: list[str] = Field(
        default=["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
        description="Variables set from the Secret's keys of the same name (object store access).",
    )
    data_claim: str = Field(
        default="azaion-data", description="PersistentVolumeClaim holding the Azaion root."
    )
    max_runtime_s: int = Field(
        default=72 * HOUR_S, ge=HOUR_S, description="dagster/max_runtime of runs that train."
    )
    pod_wait_timeout_s: float = Field(
        default=71 * HOUR_S, ge=60, description="How long the step waits for its pod to end."
    )

    @model_validator(mode="after")
    def _pod_wait_ends_before_the_run_is_killed(self) -> K8sTrainingSettings:
        if self.pod_wait_timeout_s >= self.max_runtime_s:
            raise ValueError(
                f"AZAION_K8S_POD_WAIT_TIMEOUT_S ({self.pod_wait_timeout_s:.0f}) must be below "
                f"AZAION_K8S_MAX_RUNTIME_S ({self.max_runtime_s}), so the step reports the "
                "pod's timeout itself"
            )
        return self


class K8sTrainingClient(dg.PipesClient):
    """The Pipes client trained_model calls (``command`` + ``extras``), run as a GPU pod."""

    def __init__(self, settings: K8sTrainingSettings, azaion_root: str):
        self.settings = settings
        self.azaion_root = azaion_root

    def base_pod_spec(self) -> dict[str, Any]:
        """The pod around the worker; PipesK8sClient sets image, command and the Pipes env."""
        s = self.settings
        gpus = {GPU_RESOURCE: str(s.gpus)}
        return {
            "containers": [
                {
                    "name": "training",
                    "resources": {"requests": gpus, "limits": gpus},
                    # By reference only: the values never pass through Dagster or the pod spec.
                    "env": [
                        {
                            "name": name,
                            "valueFrom": {"secretKeyRef": {"name": s.secret, "key": name}},
                        }
                        for name in s.secret_env
                    ],
                    "volumeMounts": [{"name": "azaion-data", "mountPath": self.azaion_root}],
                }
            ],
            "volumes": [
                {"name": "azaion-data", "persistentVolumeClaim": {"claimName": s.data_claim}}
            ],
            "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
            "restartPolicy": "Never",
        }

    def run(  # ty: ignore[invalid-method-override]
        self, *, context, extras=None, command: list[str]
    ) -> dg.PipesClientCompletedInvocation:
        from dagster_k8s import PipesK8sClient  # only where pods are launched: a slow import

        return PipesK8sClient(load_incluster_config=True).run(
            context=context,
            extras=extras,
            image=self.settings.image,
            command=command,
            namespace=self.settings.namespace,
            base_pod_spec=self.base_pod_spec(),
            pod_wait_timeout=self.settings.pod_wait_timeout_s,
        )


@lru_cache
def training_backend() -> str:
    return TrainingBackendSettings().training_backend


def k8s_training_client() -> K8sTrainingClient:
    return K8sTrainingClient(K8sTrainingSettings(), str(load_settings().root_dir))


def training_run_tags() -> dict[str, str]:
    """Run tags of jobs that train: a max runtime where training runs in pods."""
    if training_backend() != "k8s":
        return {}
    return {MAX_RUNTIME_TAG: str(K8sTrainingSettings().max_runtime_s)}
