"""published_model and roundtrip_ok end to end: real exports, real API and S3 over HTTP."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from pathlib import Path

import dagster as dg
import pytest
from dagster_shared.serdes import serialize_value

from azaion_pipeline.cli import main as cli
from azaion_pipeline.defs.io import RecordIOManager
from azaion_pipeline.defs.publish.assets import published_model, roundtrip_ok
from azaion_pipeline.defs.publish.jobs import rollback_job
from azaion_pipeline.defs.publish.resources import AzaionApi, publish_resource_defs
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.devserver.users import add_user
from azaion_pipeline.lib.champion import read_champion
from azaion_pipeline.lib.crypto import api_key_string, model_key_string
from azaion_pipeline.lib.distribution import Release, list_versions, read_pointer
from azaion_pipeline.lib.export import ExportedFile, ExportedModel, TensorrtExport
from azaion_pipeline.lib.hardware import hardware_string
from azaion_pipeline.lib.hashing import sha256_file
from azaion_pipeline.lib.records import dump_record, load_record
from azaion_pipeline.lib.train import TrainedWeights
from azaion_pipeline_tests.seeding import seed_records, trained_record, upstream

from .conftest import cdn_store
from .independent_reader import load_model

pytestmark = pytest.mark.slow
JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")


def export_record(path: Path, fmt: str, source: TrainedWeights) -> ExportedModel:
    file = ExportedFile(
        path=path, sha256=sha256_file(path), size_bytes=path.stat().st_size, format=fmt, seconds=0.0
    )
    return ExportedModel(file=file, imgsz=64, conf=0.25, iou=0.7, max_batch=1, source=source)


def seed_upstream(
    instance: dg.DagsterInstance, root: Path, exports: dict[str, Path], weights: Path
) -> TrainedWeights:
    """Seed the exports (records of the real files) of ``weights``, as export runs leave them."""
    # no dataset on disk: the roundtrip runs the ONNX on a grey image
    source = trained_record(weights, "2026-11-23-a", weights.parent / "missing-data.yaml")
    seed_records(
        instance,
        root,
        onnx_model=export_record(exports["onnx"], "onnx", source),
        coreml_model=export_record(exports["coreml"], "coreml", source),
        tensorrt_model=TensorrtExport(engine=None, skipped_reason="no CUDA GPU is visible"),
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
            **api_overrides,
        )
    return defs | {
        "storage": AzaionStorage(root_dir=str(tmp_root)),
        "io_manager": RecordIOManager(root_dir=str(tmp_root)),
    }


def publish(instance, root: Path, **api_overrides) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*upstream("onnx_model", "coreml_model", "tensorrt_model"), published_model, roundtrip_ok],
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


def metadata_of(result: dg.ExecuteInProcessResult) -> dict:
    [materialization] = result.asset_materializations_for_node("published_model")
    return {key: value.value for key, value in materialization.metadata.items()}


def test_publish_roundtrips_and_promotes(first_release, exports, stack):
    result, root, source = first_release
    release: Release = result.output_for_node("published_model")
    assert release.source == source and release.previous_version is None
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
    pointer = read_pointer(cdn_store(stack, "downloader"), "azaion")
    assert pointer is not None and pointer.version == meta["version"]


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
    assert cli(["fetch-model", "azaion.onnx", "--out", str(out)]) == 0
    assert out.read_bytes() == exports["onnx"].read_bytes()
    out.unlink()

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
        assert cli(["fetch-model", "azaion.onnx", "--out", str(out)]) == 1
    finally:
        restore()
    error = capsys.readouterr().err
    assert "signature" in error if part == "manifest" else f"{part} part does not match" in error
    assert list(out.parent.iterdir()) == [], "fetch-model left files behind"


def test_fetch_model_with_a_wrong_model_key_writes_nothing(
    first_release, stack_env, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("AZAION_MODEL_KEY", "not-the-model-key")
    out = tmp_path / "azaion.onnx"
    assert cli(["fetch-model", "azaion.onnx", "--out", str(out)]) == 1
    assert "AZAION_MODEL_KEY" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_503_forever_fails_and_keeps_the_previous_release(
    first_release, instance, stack_env, injected
):
    downloader = cdn_store(stack_env, "downloader")
    before, complete = read_pointer(downloader, "azaion"), list_versions(downloader, "azaion")
    injected.fail("/resources/", 503)
    result = publish(instance, first_release[1], retries=2, backoff_s=0.01)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message + str(
        failure.step_failure_data.user_failure_data
    )
    assert "HTTP 503" in message and f"{before.version} stays current" in message
    assert read_pointer(downloader, "azaion") == before
    # The .big of the failed attempt is on the CDN, but it is not a release one could roll back to.
    folders = {
        key.split("/")[2] for key in downloader.list_keys("models/azaion/") if key.count("/") == 3
    }
    assert len(folders) > len(complete)
    assert list_versions(downloader, "azaion") == complete


def test_second_release_then_rollback_job(
    first_release, instance, exports, stack_env, tmp_path, capsys
):
    first = read_pointer(cdn_store(stack_env, "downloader"), "azaion")
    other_weights = tmp_path / "other" / "best.pt"  # other bytes: another model version
    other_weights.parent.mkdir()
    other_weights.write_bytes(exports["weights"].read_bytes() + b"\0")
    source = seed_upstream(instance, first_release[1], exports, other_weights)
    second = publish(instance, first_release[1])
    assert second.success
    assert second.output_for_node("published_model").previous_version == first.version
    pointer = read_pointer(cdn_store(stack_env, "downloader"), "azaion")
    assert pointer.model_version == source.model_version != first.model_version
    rolled = rollback_job.execute_in_process(
        instance=instance, resources={"azaion_cdn": publish_resource_defs()["azaion_cdn"]}
    )
    assert rolled.success
    assert read_pointer(cdn_store(stack_env, "downloader"), "azaion").version == first.version
    assert cli(["rollback", "--list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert f"* {first.version}" in listing and len(listing) == 2  # failed attempts are not listed
    out = tmp_path / "azaion.onnx"
    assert cli(["fetch-model", "azaion.onnx", "--out", str(out)]) == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha256_file(exports["onnx"])
