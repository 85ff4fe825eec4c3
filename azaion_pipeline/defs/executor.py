"""Where steps run: processes on this host (default), or Celery workers on several machines.

With ``AZAION_EXECUTOR=celery`` every step is a Celery task on the RabbitMQ that carries the
annotation stream (its AMQP URL in ``AZAION_CELERY_BROKER_URL``, a secret: it holds the
password). Steps tagged ``GPU_STEP_TAGS`` go to the ``gpu`` queue, every other step to ``cpu``;
``azaion-pipeline worker --queue gpu|cpu`` serves one. Workers on other machines need the
pipeline store (``AZAION_STORE_*``) and the shared Dagster instance (PostgreSQL).
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster_celery import celery_executor

EXECUTOR_ENV = "AZAION_EXECUTOR"
BROKER_ENV = "AZAION_CELERY_BROKER_URL"
QUEUE_TAG = "dagster-celery/queue"  # dagster-celery's step tag naming the queue
GPU_QUEUE, CPU_QUEUE = "gpu", "cpu"
QUEUES = (GPU_QUEUE, CPU_QUEUE)
GPU_STEP_TAGS = {QUEUE_TAG: GPU_QUEUE}
RESULT_BACKEND = "rpc://"  # results come back over the same broker
# Shared by the executor (which submits) and the workers (which consume).
CELERY_CONFIG_SOURCE: dict[str, Any] = {
    "task_default_queue": CPU_QUEUE,
    "worker_prefetch_multiplier": 1,  # a worker takes one step at a time: steps are long
}


def celery_enabled() -> bool:
    return os.environ.get(EXECUTOR_ENV, "multiprocess") == "celery"


azaion_celery_executor = celery_executor.configured(
    {
        "broker": {"env": BROKER_ENV},
        "backend": RESULT_BACKEND,
        "config_source": CELERY_CONFIG_SOURCE,
    },
    name="azaion_celery_executor",
)


@dg.definitions
def executor_definitions() -> dg.Definitions:
    return dg.Definitions(executor=azaion_celery_executor) if celery_enabled() else dg.Definitions()
