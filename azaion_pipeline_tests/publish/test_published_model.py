"""published_model and roundtrip_ok end to end: real exports, real API and S3 over HTTP."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from dagster_shared.serdes import serialize_value

from azaion_pipeline.cli import main as cli
from azaion_pipeline.defs.io import RecordIOManager
from azaion_pipeline.defs.publish.assets import published_model, roundtrip_ok
from azaion_pipeline.defs.publish.jobs import promote_job, rollback_job
from azaion_pipeline.defs.publish.resources import AzaionApi, publish_resource_defs
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.defs.store import PipelineStore
from azaion_pipeline.devserver.users import add_user
from azaion_pipeline.lib.champion import read_champion
from azaion_pipeline.lib.channels import served_version
from azaion_pipeline.lib.crypto import api_key_string, model_key_string
from azaion_pipeline.lib.distribution import Release, list_versions
from azaion_pipeline.lib.evaluation.promotion import ModelEvaluation
from azaion_pipeline.lib.evaluation.scoring import score
from azaion_pipeline.lib.evaluation.slices import SizeBuckets
from azaion_pipeline.lib.export import ExportedFile, ExportedModel, TensorrtExport
from azaion_pipeline.lib.hardware import hardware_string
from azaion_pipeline.lib.hashing import sha256_file
from azaion_pipeline.lib.parity import Detections
from azaion_pipeline.lib.records import dump_record, load_record
from azaion_pipeline.lib.release_manifest import sidecar_path
from azaion_pipeline.lib.train import TrainedWeights
from azaion_pipeline.lib.tuf_repo import KEY_ENV, read_targets
from azaion_pipeline_tests.seeding import seed_records, trained_record, upstream

from .conftest import admin_client, cdn_store
from .independent_reader import load_model

pytestmark = pytest.mark.slow
JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")


def export_record(path: Path, fmt: str, source: TrainedWeights) -> ExportedModel:
    file = ExportedFile(
        path=path, sha256=sha256_file(path), size_bytes=path.stat().st_size, format=fmt, seconds=0.0
    )
    return ExportedModel(file=file, imgsz=64, conf=0.25, iou=0.7, max_batch=1, source=source)


def evaluation_record(onnx: Path, source: TrainedWeights) -> ModelEvaluation:
    """model_evaluation's record for ``onnx``: real scoring of constructed detections (the
    untrained export detects nothing), so there are per-class thresholds to ship."""
    truth = Detections(np.array([[0.1, 0.1, 0.5, 0.5]]), np.ones(1), np.array([0]))
    found = Detections(np.array([[0.1, 0.1, 0.5, 0.5]]), np.array([0.62]), np.array([0]))
    scores = score(["a", "b"], [truth, truth], [found, found], source.class_names,
                   SizeBuckets(edges=(0.01, 0.1), quantiles=(1 / 3, 2 / 3), boxes=2))  # fmt: skip
    return ModelEvaluation(
        model_version=source.model_version,
        dataset_version=source.dataset_version,
        onnx_path=onnx,
        onnx_sha256=sha256_file(onnx),
        candidate=scores.summary,
    )


def seed_upstream(
    instance: dg.DagsterInstance, root: Path, exports: dict[str, Path], weights: Path
) -> TrainedWeights:
    """Seed the exports (records of the real files) of ``weights`` and the evaluation of its
    ONNX that passed the gate, as export and evaluation runs leave them."""
    # no dataset on disk: the roundtrip runs the ONNX on a grey image
    source = trained_record(weights, "2026-11-23-a", weights.parent / "missing-data.yaml")
    seed_records(
        instance,
        root,
        onnx_model=export_record(exports["onnx"], "onnx", source),
        coreml_model=export_record(exports["coreml"], "coreml", source),
        tensorrt_model=TensorrtExport(engine=None, skipped_reason="no CUDA GPU is visible"),
        model_evaluation=evaluation_record(exports["onnx"], source),
    )
    return source


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def resources(tmp_root: Path, **api_overrides) -> dict:
    defs = publish_resource_defs()
    if api_overrides:
        defs["azaion_api"] = AzaionApi(
            url=dg.EnvVar("AZAION_API_URL"),
            email=dg.EnvVar("AZAION_API_EMAIL"),
            password=dg.EnvVar("AZAION_API_PASSWORD"),
            admin_email=dg.EnvVar("AZAION_API_ADMIN_EMAIL"),
            admin_password=dg.EnvVar("AZAION_API_ADMIN_PASSWORD"),
            **api_overrides,
        )
    return defs | {
        "storage": AzaionStorage(root_dir=str(tmp_root)),
        "io_manager": RecordIOManager(root_dir=str(tmp_root)),
        "pipeline_store": PipelineStore(),
    }


def publish(instance, root: Path, **api_overrides) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [
            *upstream("onnx_model", "coreml_model", "tensorrt_model", "model_evaluation"),
            published_model,
            roundtrip_ok,
        ],
        instance=instance,
        resources=resources(root, **api_overrides),
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def first_release(instance, exports, stack, tmp_path_factory):
    root = tmp_path_factory.mktemp("azaion-root")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in stack.items():
            patch.setenv(name, value)
        source = seed_upstream(instance, root, exports, exports["weights"])
        result = publish(instance, root)
    assert result.success, result.all_events
    return result, root, source


def served(env: dict[str, str], channel: str = "canary") -> str | None:
    """The release a channel serves, as its TUF targets say."""
    return served_version(read_targets(cdn_store(env, "downloader"), "azaion", channel, "models"))


def fetch(out: Path, *extra: str) -> int:
    """fetch-model on the canary channel, with a device state folder beside ``out``."""
    state = out.parent.parent / f"{out.parent.name}-state"
    return cli(
        [
            "fetch-model",
            "azaion.onnx",
            "--out",
            str(out),
            "--channel",
            "canary",
            "--state-dir",
            str(state),
            *extra,
        ]
    )


def metadata_of(result: dg.ExecuteInProcessResult) -> dict:
    [materialization] = result.asset_materializations_for_node("published_model")
    return {key: value.value for key, value in materialization.metadata.items()}


def test_publish_roundtrips_and_promotes(first_release, exports, stack):
    result, root, source = first_release
    release: Release = result.output_for_node("published_model")
    assert release.source == source and release.previous_version is None
    assert release.channel == "canary" and release.targets_version == 1
    assert load_record(dump_record(release), Release) == release  # the stored form
    assert [a.export.file.path for a in release.artifacts] == [exports["onnx"], exports["coreml"]]
    meta = metadata_of(result)
    assert meta["formats"] == "onnx,coreml"
    assert meta["model_version"] == source.model_version
    assert meta["dataset_version"] == source.dataset_version
    assert meta["onnx_sha256"] == sha256_file(exports["onnx"])
    assert meta["onnx_big_size"] + meta["onnx_small_size"] > meta["onnx_size_bytes"]
    [check] = result.get_asset_check_evaluations()
    assert check.passed, check.description
    assert "1" in check.metadata["onnx_output_shape"].value
    champion = read_champion(AzaionStorage(root_dir=str(root)).layout())
    assert champion is not None and champion.model_version == source.model_version
    assert served(stack) == meta["version"] and meta["channel"] == "canary"


def test_no_secret_in_event_log_or_metadata(first_release, instance, stack):
    result = first_release[0]
    records = instance.all_logs(result.run_id)
    text = "\n".join(serialize_value(record) for record in records)
    text += json.dumps(metadata_of(result), default=str)
    text += serialize_value(instance.get_run_by_id(result.run_id))
    secrets_to_find = {
        name: stack[name]
        for name in (
            "AZAION_API_PASSWORD",
            "AZAION_CDN_UPLOADER_SECRET",
            "AZAION_CDN_DOWNLOADER_SECRET",
            "AZAION_MODEL_KEY",
            "AZAION_SIGNING_KEY",
            *KEY_ENV.values(),
        )
    }
    secrets_to_find["model key string"] = model_key_string(stack["AZAION_MODEL_KEY"])
    secrets_to_find["api key string"] = api_key_string(
        stack["AZAION_API_EMAIL"], stack["AZAION_API_PASSWORD"], hardware_string()
    )
    assert len(records) > 10
    for name, value in secrets_to_find.items():
        assert value not in text, f"{name} leaked into the event log or metadata"
    assert not JWT.search(text), "a JWT leaked into the event log or metadata"


def test_independent_client_reads_what_we_publish(first_release, exports, stack):
    meta = metadata_of(first_release[0])
    email, password = f"{secrets.token_hex(4)}@edge.test", secrets.token_urlsafe(12)
    add_user(Path(stack["AZAION_DEVSTACK_USERS_FILE"]), email, password, ["Operator"])
    small_uri = meta["onnx_small_uri"].removeprefix(stack["AZAION_API_URL"] + "/resources/get/")
    folder, small_name = small_uri.rsplit("/", 1)
    model = load_model(
        api_url=stack["AZAION_API_URL"],
        email=email,
        password=password,
        hardware="CPU: Independent. GPU: None. Memory: 1 kB. DriveSerial: 42",
        folder=folder,
        small_name=small_name,
        s3_endpoint=stack["AZAION_CDN_ENDPOINT"],
        s3_key=stack["AZAION_CDN_DOWNLOADER_KEY"],
        s3_secret=stack["AZAION_CDN_DOWNLOADER_SECRET"],
        bucket=stack["AZAION_CDN_BUCKET"],
        big_key=meta["onnx_big_uri"].split("/", 3)[3],
        model_secret=stack["AZAION_MODEL_KEY"],
    )
    assert model == exports["onnx"].read_bytes()


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize("part", ["big", "small", "manifest"])
def test_fetch_model_refuses_a_flipped_byte(
    first_release, exports, stack_env, tmp_path, capsys, part
):
    meta = metadata_of(first_release[0])
    out = tmp_path / "edge" / "azaion.onnx"
    assert fetch(out) == 0
    assert out.read_bytes() == exports["onnx"].read_bytes()
    out.unlink()
    sidecar_path(out).unlink()

    uploader = cdn_store(stack_env, "uploader")
    if part == "small":
        key = meta["onnx_small_uri"].removeprefix(stack_env["AZAION_API_URL"] + "/resources/get/")
        stored = Path(stack_env["AZAION_DEVSTACK_STORAGE_DIR"]) / key
        original = stored.read_bytes()
        restore = lambda: stored.write_bytes(original)  # noqa: E731
        stored.write_bytes(_flip(original, 100))
    else:
        key = meta[f"onnx_{part}_uri"].split("/", 3)[3]
        original = uploader.get_bytes(key)
        restore = lambda: uploader.put_bytes(key, original)  # noqa: E731
        uploader.put_bytes(key, _flip(original, len(original) // 2))
    try:
        assert fetch(out) == 1
    finally:
        restore()
    error = capsys.readouterr().err
    if part == "small":
        assert "small part does not match" in error
    else:  # the TUF targets pin the CDN objects: the changed one is named
        assert key.rsplit("/", 1)[1] in error and "does not match expected hash" in error
    assert list(out.parent.iterdir()) == [], "fetch-model left files behind"


def test_fetch_model_writes_the_thresholds_and_evaluation_beside_the_model(
    first_release, exports, stack_env, tmp_path, capsys
):
    source = first_release[2]
    evaluation = evaluation_record(exports["onnx"], source).candidate
    out = tmp_path / "edge" / "azaion.onnx"
    assert fetch(out) == 0
    assert str(sidecar_path(out)) in capsys.readouterr().out
    card = json.loads(sidecar_path(out).read_text())
    assert card["class_thresholds"] == {"0": pytest.approx(0.62)}
    assert card["class_thresholds"] == {
        str(k): pytest.approx(v.conf) for k, v in evaluation.thresholds.items()
    }
    assert card["evaluation"]["overall"]["ap50_95"] == pytest.approx(1.0)
    assert card["sha256"] == sha256_file(out) and card["model_version"] == source.model_version


def test_fetch_model_with_a_wrong_model_key_writes_nothing(
    first_release, stack_env, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("AZAION_MODEL_KEY", "not-the-model-key")
    out = tmp_path / "edge" / "azaion.onnx"
    assert fetch(out) == 1
    assert "AZAION_MODEL_KEY" in capsys.readouterr().err
    assert list(out.parent.iterdir()) == []


def test_503_forever_fails_and_keeps_the_previous_release(
    first_release, instance, stack_env, injected
):
    downloader = cdn_store(stack_env, "downloader")
    before, complete = served(stack_env), list_versions(downloader, "azaion")
    injected.fail("/resources/", 503)
    result = publish(instance, first_release[1], retries=2, backoff_s=0.01)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message + str(
        failure.step_failure_data.user_failure_data
    )
    assert "HTTP 503" in message and f"{before} stays current" in message
    assert served(stack_env) == before
    # The .big of the failed attempt went up, and the publish removed it again.
    assert release_folders(stack_env) == set(complete)
    assert list_versions(downloader, "azaion") == complete


def release_folders(env: dict[str, str]) -> set[str]:
    """The version folders of "azaion" on the CDN, and those holding a .small on the API (the same)."""
    cdn = {
        key.split("/")[2]
        for key in cdn_store(env, "downloader").list_keys("models/azaion/")
        if key.count("/") == 3 and "/tuf/" not in key
    }
    api = {f.folder.split("/")[2] for f in admin_client(env).list_files("models/azaion")}
    assert api == cdn, f"the two sides differ: CDN {sorted(cdn)}, API {sorted(api)}"
    return cdn


def test_roundtrip_ok_fails_cleanly_on_transport_errors(
    first_release, instance, stack_env, injected
):
    injected.fail("/resources/get/", 503)
    result = dg.materialize(
        [
            *upstream("onnx_model", "coreml_model", "tensorrt_model", "model_evaluation"),
            published_model,
            roundtrip_ok,
        ],
        instance=instance,
        resources=resources(first_release[1], retries=1, backoff_s=0.01),
        selection=dg.AssetSelection.checks(roundtrip_ok),
        raise_on_error=False,
    )
    [check] = result.get_asset_check_evaluations()
    assert result.success and not check.passed
    assert "roundtrip failed" in check.description and "HTTP 503" in check.description


def test_a_release_whose_round_trip_fails_never_becomes_current(
    first_release, instance, stack_env, injected
):
    before = served(stack_env)
    complete = set(list_versions(cdn_store(stack_env, "downloader"), "azaion"))
    injected.fail("/resources/get/", 503)  # uploads work; loading the staged release back fails
    result = publish(instance, first_release[1], retries=1, backoff_s=0.01)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = str(failure.step_failure_data.user_failure_data)
    assert "did not load back" in message and "canary channel did not move" in message
    # The staged release was complete on both sides; the failed publish left nothing of it.
    assert served(stack_env) == before
    assert release_folders(stack_env) == complete


def test_second_release_rollback_and_promotion(
    first_release, instance, exports, stack_env, tmp_path, capsys
):
    first = served(stack_env)
    out = tmp_path / "edge" / "azaion.onnx"
    other_weights = tmp_path / "other" / "best.pt"  # other bytes: another model version
    other_weights.parent.mkdir()
    other_weights.write_bytes(exports["weights"].read_bytes() + b"\0")
    source = seed_upstream(instance, first_release[1], exports, other_weights)
    second = publish(instance, first_release[1])
    assert second.success
    release = second.output_for_node("published_model")
    assert release.previous_version == first and release.source == source
    second_version = release.version
    assert served(stack_env) == second_version
    assert fetch(out) == 0 and second_version in capsys.readouterr().out

    rolled = rollback_job.execute_in_process(
        instance=instance,
        resources=publish_resource_defs(),
        run_config={"ops": {"roll_channel_back": {"config": {"channel": "canary"}}}},
    )
    assert rolled.success
    assert served(stack_env) == first
    # The device that had the second release accepts the rollback: it is newer metadata.
    assert fetch(out) == 0 and f"canary {first}" in capsys.readouterr().out
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha256_file(exports["onnx"])

    assert served(stack_env, "stable") is None
    assert promote_job.execute_in_process(
        instance=instance, resources=publish_resource_defs()
    ).success
    assert served(stack_env, "stable") == first
    assert cli(["rollback", "--list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    # Failed attempts are not releases; the marks say which channel serves which.
    assert f"{first}  canary,stable" in listing and f"{second_version}" in listing
