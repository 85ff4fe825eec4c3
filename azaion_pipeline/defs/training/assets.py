"""trained_model: YOLO training in a child process, and the promotion gate."""

import dagster as dg

from azaion_pipeline.defs.lineage import upstream_metadata
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.defs.training.resources import GateConfig, TrainingConfig, YoloTrainer
from azaion_pipeline.lib.champion import read_champion
from azaion_pipeline.lib.evaluate import gate
from azaion_pipeline.lib.train import TrainingError, describe_failure, preflight, resolve_device


@dg.asset(
    group_name="training",
    kinds={"pytorch", "yolo"},
    pool="gpu",
    deps=["training_dataset"],
    description=(
        "YOLO weights trained on training_dataset in a child process (Dagster Pipes). "
        "Resumes a run that died; warm-starts from the champion on request."
    ),
)
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    storage: AzaionStorage,
    yolo_trainer: YoloTrainer,
    training_pipes_client: dg.PipesSubprocessClient,
) -> dg.MaterializeResult:
    dataset = upstream_metadata(context, "training_dataset")
    try:
        request = yolo_trainer.request(config, dataset, storage.layout())
        device = preflight(request)
    except TrainingError as exc:
        raise dg.Failure(description=str(exc)) from exc
    context.log.info(
        f"training {request.model} ({request.init}) on {request.data_yaml} with device {device}"
    )
    try:
        invocation = training_pipes_client.run(
            context=context,
            command=yolo_trainer.worker_command(),
            extras={"request": request.model_dump(mode="json")},
        )
    except Exception as exc:  # the child crashed or was killed: say what survives
        raise dg.Failure(description=describe_failure(request, exc)) from exc
    return invocation.get_materialize_result()


@dg.asset_check(
    asset="trained_model",
    blocking=True,
    description=(
        "Candidate vs the current champion on the same test split: passes when its mAP50-95 "
        "is ≥ champion − tolerance and ≥ the floor. Failing stops exports and publishing."
    ),
)
def beats_champion(
    context: dg.AssetCheckExecutionContext,
    config: GateConfig,
    storage: AzaionStorage,
    yolo_trainer: YoloTrainer,
) -> dg.AssetCheckResult:
    model = upstream_metadata(context, "trained_model")
    champion = read_champion(storage.layout())
    verdict = gate(
        candidate_weights=model["weights_path"],
        champion_weights=champion.weights if champion else None,
        data_yaml=model["data_yaml"],
        imgsz=int(model["imgsz"]),
        device=resolve_device(yolo_trainer.device),
        tolerance=config.tolerance,
        floor=config.floor,
    )
    metadata = {
        "reason": verdict.reason,
        "candidate_model_version": model["model_version"],
        "candidate_map50_95": verdict.candidate.map50_95 if verdict.candidate else 0.0,
        "tolerance": verdict.tolerance,
        "floor": verdict.floor,
        "per_class": dg.MetadataValue.md(verdict.per_class_markdown()),
    }
    if champion and verdict.champion:
        metadata.update(
            champion_model_version=champion.model_version,
            champion_map50_95=verdict.champion.map50_95,
        )
    return dg.AssetCheckResult(passed=verdict.passed, metadata=metadata)
