"""Training resources and tunables, and their default wiring."""

import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from pydantic import Field

from azaion_pipeline.defs.training.k8s import k8s_training_client, training_backend
from azaion_pipeline.lib.champion import Champion
from azaion_pipeline.lib.dataset.versions import DatasetVersion
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.settings import load_settings
from azaion_pipeline.lib.train import (
    INIT_CHAMPION,
    TrainingRequest,
    TrainingSettings,
    resolve_base_model,
    resolve_init,
)


class TrainingConfig(dg.Config, TrainingSettings):
    """Per-run training tunables (``TrainingSettings``): defaults are Azaion's production
    recipe; demo and tests go tiny."""


class YoloTrainer(dg.ConfigurableResource):
    """Where and how training runs: the device, dataloader workers, local base models. The
    code location wires them from ``PipelineSettings`` (AZAION_TRAIN_DEVICE ...)."""

    device: str = Field(description="auto (CUDA when present, else CPU) | cpu | cuda | 0,1 ...")
    workers: int = Field(ge=0, description="Dataloader worker processes.")
    base_models_dir: str | None = Field(
        default=None, description="Folder of local base .pt/.yaml files (never downloaded)."
    )
    python_executable: str = Field(
        default=sys.executable, description="Interpreter that runs the training child process."
    )

    def request(
        self,
        config: TrainingConfig,
        dataset: DatasetVersion,
        layout: AzaionLayout,
        champion_of: Callable[[], Champion | None],
    ) -> TrainingRequest:
        """``champion_of`` is asked only for ``init: champion`` (it may download weights)."""
        champion = champion_of() if config.init == INIT_CHAMPION else None
        init_weights, init_sha256 = resolve_init(
            config.init, champion.weights if champion else None
        )
        base_dir = Path(self.base_models_dir) if self.base_models_dir else None
        settings = TrainingSettings.model_validate(config.model_dump()).model_copy(
            update={
                "model": resolve_base_model(config.model, base_dir),
                "workers": self.workers if config.workers is None else config.workers,
            }
        )
        return TrainingRequest(
            settings=settings,
            data_yaml=dataset.data_yaml,
            dataset_version=dataset.version,
            models_dir=layout.models,
            init_weights=init_weights,
            init_sha256=init_sha256,
            device=self.device,
        )

    def worker_command(self) -> list[str]:
        return [self.python_executable, "-m", "azaion_pipeline.lib.train_worker"]


@dg.definitions
def training_resources() -> dg.Definitions:
    settings = load_settings()
    return dg.Definitions(
        resources={
            "yolo_trainer": YoloTrainer(
                device=settings.train_device,
                workers=settings.train_workers,
                base_models_dir=str(settings.base_models_dir) if settings.base_models_dir else None,
            ),
            # The asset passes only `command` and `extras`: a child process here, or a GPU
            # pod through dagster-k8s with AZAION_TRAINING_BACKEND=k8s (k8s.py).
            "training_pipes_client": (
                k8s_training_client()
                if training_backend() == "k8s"
                else dg.PipesSubprocessClient(env={"YOLO_OFFLINE": "1"})
            ),
        }
    )
