"""Child-process entry point for training, driven through Dagster Pipes.

``python -m azaion_pipeline.lib.train_worker``: reads the ``TrainingRequest`` from the Pipes
extras, streams one log line per finished epoch, and sends the ``TrainedWeights`` record back
(the parent returns it as the asset's output). Runs the
same under a subprocess, a Kubernetes pod or any other Pipes client; an out-of-memory kill
here cannot take the Dagster run worker with it.
"""

from __future__ import annotations

import os

from dagster_pipes import open_dagster_pipes

from azaion_pipeline.lib.train import TrainingRequest, train


def main() -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")  # never reach for weights or telemetry
    with open_dagster_pipes() as pipes:
        request = TrainingRequest.model_validate(pipes.get_extra("request"))
        pipes.log.info(f"training run key {request.key()} on dataset {request.dataset_version}")
        trained = train(request, on_epoch=lambda report: pipes.log.info(report.line()))
        pipes.report_custom_message(trained.model_dump(mode="json"))


if __name__ == "__main__":
    main()
