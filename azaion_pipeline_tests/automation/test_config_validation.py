"""A bad launchpad value is refused before any run exists, with the field named.

The same check runs wherever Dagster resolves a run config: ``validate_run_config``,
``execute_in_process``, ``dagster asset materialize -c`` (the real CLI) and a launch from the
UI (the webserver's GraphQL launch, as the launchpad sends it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import requests
import yaml
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from azaion_pipeline.definitions import defs
from azaion_pipeline.lib.tuf_repo import KEY_ENV

# (job, step, field, bad value, what the refusal must say)
BAD_VALUES = [
    ("ingest_job", "augmented_dataset", "variants", 8, "variants"),
    ("ingest_job", "raw_annotations", "train_percent", 0, "train_percent"),
    ("ingest_job", "raw_annotations", "valid_percent", 30, "train_percent + valid_percent"),
    ("ingest_job", "raw_annotations", "max_image_pixels", 0, "max_image_pixels"),
    ("retrain_job", "trained_model", "epochs", 0, "epochs"),
    ("retrain_job", "trained_model", "imgsz", 100, "imgsz"),
    ("retrain_job", "trained_model", "imgsz", 8192, "imgsz"),
    ("retrain_job", "model_evaluation_promotion_gate", "tolerance", -0.1, "tolerance"),
    ("retrain_job", "model_evaluation_promotion_gate", "class_min_boxes", 0, "class_min_boxes"),
    ("retrain_job", "model_evaluation", "resamples", 999, "resamples"),
    ("retrain_job", "onnx_model", "imgsz", 650, "imgsz"),
    ("retrain_job", "onnx_model_onnx_matches_pytorch", "map_tolerance", -1.0, "map_tolerance"),
    ("retrain_job", "published_model", "small_size_kb", 0, "small_size_kb"),
    ("ingest_job", "augmented_dataset", "jpeg_quality", 101, "jpeg_quality"),
]
# The one value each case changes, set to something valid: the refusal is about that field.
GOOD_VALUES = {
    "variants": 3,
    "jpeg_quality": 90,
    "train_percent": 60,
    "valid_percent": 20,
    "max_image_pixels": 1_000_000,
    "epochs": 1,
    "imgsz": 640,
    "tolerance": 0.0,
    "class_min_boxes": 10,
    "resamples": 2000,
    "map_tolerance": 0.02,
    "small_size_kb": 1,
}
# Publishing resources read their settings from the environment when a run config is resolved.
PUBLISH_ENV = {
    name: "unused"
    for name in (
        "AZAION_API_URL",
        "AZAION_API_EMAIL",
        "AZAION_API_PASSWORD",
        "AZAION_CDN_ENDPOINT",
        "AZAION_CDN_BUCKET",
        "AZAION_CDN_UPLOADER_KEY",
        "AZAION_CDN_UPLOADER_SECRET",
        "AZAION_CDN_DOWNLOADER_KEY",
        "AZAION_CDN_DOWNLOADER_SECRET",
        "AZAION_MODEL_KEY",
        "AZAION_SIGNING_KEY",
        *KEY_ENV.values(),
    )
}


def run_config(step: str, field: str, value) -> dict:
    return {"ops": {step: {"config": {field: value}}}}


@pytest.fixture
def publish_env(monkeypatch):
    for name, value in PUBLISH_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(("job", "step", "field", "bad", "message"), BAD_VALUES)
def test_bad_value_is_refused_by_run_config_validation(publish_env, job, step, field, bad, message):
    job_def = defs.get_job_def(job)
    assert dg.validate_run_config(job_def, run_config(step, field, GOOD_VALUES[field]))
    with pytest.raises(dg.DagsterInvalidConfigError, match="refused") as refused:
        dg.validate_run_config(job_def, run_config(step, field, bad))
    assert message in str(refused.value)


@pytest.mark.parametrize(("job", "step", "field", "bad", "message"), BAD_VALUES[::2])
def test_bad_value_is_refused_before_a_run_is_created(publish_env, job, step, field, bad, message):
    with dg.instance_for_test() as instance:
        with pytest.raises(dg.DagsterInvalidConfigError) as refused:
            defs.get_job_def(job).execute_in_process(
                run_config=run_config(step, field, bad), instance=instance
            )
        assert message in str(refused.value)
        assert instance.get_runs() == []


CLI_CASES = [
    ("augmented_dataset", "variants", 9, "variants"),
    ("raw_annotations", "valid_percent", 40, "train_percent + valid_percent"),
    ("trained_model", "imgsz", 100, "imgsz"),
    ("trained_model", "epochs", 0, "epochs"),
    ("published_model", "small_size_kb", 0, "small_size_kb"),
]


@pytest.mark.parametrize(("asset", "field", "bad", "message"), CLI_CASES)
def test_cli_materialize_refuses_a_bad_value_before_any_run(tmp_path, asset, field, bad, message):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(run_config(asset, field, bad)))
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        **PUBLISH_ENV,
        "DAGSTER_HOME": str(home),
        "AZAION_ROOT_DIR": str(tmp_path / "root"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    materialize = [sys.executable, "-m", "dagster", "asset", "materialize"]
    done = subprocess.run(
        [*materialize, "-m", "azaion_pipeline.definitions", "--select", asset, "-c", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "refused" in output and message in output, output
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_runs() == []


@pytest.mark.slow
def test_the_ui_launch_refuses_a_bad_value_before_any_run(tmp_path):
    """The launchpad's launch goes through the webserver's GraphQL mutation, as here."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = tmp_path / "dagster_home"
    home.mkdir()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, **PUBLISH_ENV, "DAGSTER_HOME": str(home), "PYTHONPATH": str(root)}
    env["AZAION_ROOT_DIR"] = str(tmp_path / "root")
    webserver = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-webserver")), "-w", str(root / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)
        deadline = time.monotonic() + 240
        while True:
            assert webserver.poll() is None, "the webserver exited"
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the webserver did not come up"
            time.sleep(1)
        for step, field, bad, message in [
            ("trained_model", "imgsz", 100, "imgsz"),
            ("raw_annotations", "valid_percent", 40, "train_percent + valid_percent"),
        ]:
            job = "retrain_job" if step == "trained_model" else "ingest_job"
            with pytest.raises(DagsterGraphQLClientError) as refused:
                client.submit_job_execution(job, run_config=run_config(step, field, bad))
            assert message in str(refused.value)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.get_runs() == []
    finally:
        os.killpg(webserver.pid, signal.SIGTERM)
        webserver.wait(timeout=60)
