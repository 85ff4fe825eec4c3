"""Training resources and tunables, and their default wiring."""

import os
import sys
from pathlib import Path

import dagster as dg
from pydantic import Field

from azaion_pipeline.lib.champion import read_champion
from azaion_pipeline.lib.dataset.versions import DatasetVersion
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.train import TrainingRequest, resolve_base_model, resolve_init


class TrainingConfig(dg.Config):
    """Per-run tunables. Defaults are Azaion's production recipe; demo/tests go tiny."""

    model: str = Field(
        default="yolo11m.yaml",
        description="Architecture: a bundled ultralytics .yaml name or a local .yaml/.pt path.",
    )
    init: str = Field(
        default="scratch",
        description="scratch | champion (warm start from the published champion) | weights path.",
    )
    epochs: int = Field(default=120, ge=1)
    imgsz: int = Field(default=1280, ge=32)
    batch: int = Field(default=11, ge=1, description="11 fits a 24 GB RTX 4090 at 1280 px.")
    patience: int = Field(default=100, ge=1, description="Early stop after N epochs without gain.")
    save_period: int = Field(default=1, description="Checkpoint every N epochs (resume points).")
    seed: int = 0
    cache: str = Field(default="false", description="Image cache: false | ram | disk.")
    workers: int | None = Field(default=None, description="Dataloader workers (resource default).")
    plots: bool = True
    hyperparameters: dict[str, float] = Field(
        default={}, description="Extra ultralytics train arguments (lr0, mosaic, nbs ...)."
    )
    optimizer: str = Field(
        default="auto",
        description=(
            "ultralytics optimizer. auto ignores lr0 and, below 10k iterations, picks AdamW at "
            "0.01/(4+nc) ≈ 1.2e-4 for nc=80; name one (SGD, AdamW ...) for lr0 to apply."
        ),
    )


class GateConfig(dg.Config):
    """The promotion gate's thresholds on test-split mAP50-95."""

    tolerance: float = Field(
        default=0.01, ge=0.0, description="How far below the champion a candidate may score."
    )
    floor: float = Field(default=0.1, ge=0.0, le=1.0, description="Minimum mAP50-95 to pass.")


class YoloTrainer(dg.ConfigurableResource):
    """Where and how training runs: the device, dataloader workers, local base models."""

    device: str = Field(
        default="auto", description="auto (CUDA when present, else CPU) | cpu | cuda | 0,1 ..."
    )
    workers: int = Field(default=8, ge=0, description="Dataloader worker processes.")
    base_models_dir: str | None = Field(
        default=None, description="Folder of local base .pt/.yaml files (never downloaded)."
    )
    python_executable: str = Field(
        default=sys.executable, description="Interpreter that runs the training child process."
    )

    def request(
        self, config: TrainingConfig, dataset: DatasetVersion, layout: AzaionLayout
    ) -> TrainingRequest:
        champion = read_champion(layout)
        init_weights, init_sha256 = resolve_init(
            config.init, champion.weights if champion else None
        )
        base_dir = Path(self.base_models_dir) if self.base_models_dir else None
        return TrainingRequest(
            data_yaml=dataset.data_yaml,
            dataset_version=dataset.version,
            models_dir=layout.models,
            model=resolve_base_model(config.model, base_dir),
            init=config.init,
            init_weights=init_weights,
            init_sha256=init_sha256,
            epochs=config.epochs,
            imgsz=config.imgsz,
            batch=config.batch,
            patience=config.patience,
            save_period=config.save_period,
            seed=config.seed,
            cache=config.cache,
            workers=self.workers if config.workers is None else config.workers,
            device=self.device,
            plots=config.plots,
            # auto stays out of the recipe, so run keys from before this option are unchanged
            hyperparameters={
                **config.hyperparameters,
                **({"optimizer": config.optimizer} if config.optimizer != "auto" else {}),
            },
        )

    def worker_command(self) -> list[str]:
        return [self.python_executable, "-m", "azaion_pipeline.lib.train_worker"]


@dg.definitions
def training_resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "yolo_trainer": YoloTrainer(
                device=os.environ.get("AZAION_TRAIN_DEVICE", "auto"),
                workers=int(os.environ.get("AZAION_TRAIN_WORKERS", "8")),
                base_models_dir=os.environ.get("AZAION_BASE_MODELS_DIR"),
            ),
            # Swap for dagster_k8s.PipesK8sClient to train in a GPU pod: the asset passes
            # only `command` and `extras`, which every Pipes client accepts.
            "training_pipes_client": dg.PipesSubprocessClient(env={"YOLO_OFFLINE": "1"}),
        }
    )
