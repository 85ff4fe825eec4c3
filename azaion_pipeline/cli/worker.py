"""``azaion-pipeline worker --queue gpu|cpu``: a Celery worker that runs the pipeline's steps.

It consumes one queue of the broker in ``AZAION_CELERY_BROKER_URL`` and runs each step it gets
in this process (one at a time: a GPU host runs one worker per GPU), loading the code location
from this installation and the Azaion root and pipeline store from its own environment.
"""

from __future__ import annotations

import argparse
import os
import socket
import uuid


def register(subparsers: argparse._SubParsersAction) -> None:
    from azaion_pipeline.defs.executor import QUEUES

    parser = subparsers.add_parser(
        "worker", help="run a Celery worker for the gpu or cpu queue", description=__doc__
    )
    parser.add_argument("--queue", required=True, choices=QUEUES, help="the queue to serve")
    parser.add_argument("--name", help="worker name (default: QUEUE-RANDOM@HOST)")
    parser.add_argument("--loglevel", default="INFO")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    from azaion_pipeline.defs.executor import (
        BROKER_ENV,
        CELERY_CONFIG_SOURCE,
        EXECUTOR_ENV,
        RESULT_BACKEND,
    )

    broker = os.environ.get(BROKER_ENV)
    if not broker:
        raise RuntimeError(f"{BROKER_ENV} is not set: the AMQP URL of the pipeline's RabbitMQ")
    os.environ[EXECUTOR_ENV] = "celery"  # the code location this worker loads uses Celery too
    app = make_app(
        CeleryExecutor.for_cli(
            broker=broker, backend=RESULT_BACKEND, config_source=CELERY_CONFIG_SOURCE
        ).app_args()
    )
    create_task(app)  # dagster-celery's execute_plan task: runs the steps it is sent
    name = args.name or f"{args.queue}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    app.worker_main(
        [
            "worker",
            f"--queues={args.queue}",
            f"--hostname={name}",
            "--pool=solo",  # steps start their own processes (training, augmentation pools)
            f"--loglevel={args.loglevel}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0
