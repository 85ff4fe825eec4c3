"""The Dagster UI as a user sees it, in headless Chromium against a real `azaion-pipeline dev`.

Skipped only where Chromium is not installed (``make browser`` installs it); with ``CI``
set a missing browser is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import requests

from azaion_pipeline.lib.classes import ClassCatalog
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.sample_data import generate_sample_data
from azaion_pipeline.lib.settings import PROJECT_ROOT, load_settings

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
# Without the networking flags Chromium keeps calling home, which floods a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ASSETS = [
    "raw_annotations",
    "augmented_dataset",
    "training_dataset",
    "trained_model",
    "onnx_model",
    "coreml_model",
    "tensorrt_model",
    "model_evaluation",
    "published_model",
]
GROUPS = ["dataset", "training", "export", "evaluation", "publish"]
STARTUP_TIMEOUT_S = 240
RUN_TIMEOUT_S = 480


def chromium_or_skip() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if path:
        return path
    message = "Chromium is not installed (`make browser` installs Debian's chromium package)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; the UI test must run in CI")
    pytest.skip(message)


def group_filter(group: str) -> str:
    """The lineage-page filter for one group, as the catalog links it."""
    return f'group%3A"{group}"'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_run(home: Path, run_id: str) -> dg.DagsterRunStatus:
    """The run's final status, read from the instance the UI runs on."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while time.monotonic() < deadline:
            run = instance.get_run_by_id(run_id)
            if run.is_finished:
                return run.status
            time.sleep(2)
    pytest.fail(f"run {run_id} did not finish in {RUN_TIMEOUT_S} s")


@pytest.fixture
def dagster_ui(tmp_path):
    """`azaion-pipeline dev` on a free loopback port, a temp instance and a small sample set."""
    layout = AzaionLayout.under(tmp_path / "azaion")
    generate_sample_data(
        layout, ClassCatalog.load(load_settings().resolved_classes_file()), images=24, seed=0
    )
    port = free_port()
    home = tmp_path / "dagster_home"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "AZAION_ROOT_DIR": str(layout.root),
        # The test launches the run itself; the sensor would race it for the same batch.
        "AZAION_AUTOMATION_RUNNING": "false",
        "YOLO_OFFLINE": "1",
    }
    env.pop("AZAION_WEBHOOK_URL", None)
    log = (tmp_path / "dev.log").open("wb")
    command = [str(Path(sys.executable).with_name("azaion-pipeline")), "dev", "--port", str(port)]
    # Its own session, so teardown can stop dagster dev and everything it spawned together.
    server = subprocess.Popen(
        command, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(
                    f"azaion-pipeline dev exited: {(tmp_path / 'dev.log').read_text()[-3000:]}"
                )
            try:
                if requests.get(f"{base_url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the UI did not come up in {STARTUP_TIMEOUT_S} s")
            time.sleep(1)
        yield base_url, home, tmp_path
    finally:
        os.killpg(server.pid, signal.SIGINT)  # dagster dev shuts its webserver and daemon down
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_the_ui_lists_the_assets_and_materialises_the_dataset_group(dagster_ui):
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    base_url, home, tmp_path = dagster_ui
    screenshots = Path(os.environ.get("AZAION_SCREENSHOT_DIR", tmp_path))
    screenshots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        # Assertions wait as long as actions: on 2 busy cores the UI's asset status queries
        # were seen still "Loading..." after expect's own 5 s default.
        expect.set_options(timeout=60_000)

        page.goto(f"{base_url}/assets")
        for asset in ASSETS:
            expect(page.locator(f"a[href='/assets/{asset}']")).to_be_visible()
        for group in GROUPS:
            expect(page.locator(f"a[href*='{group_filter(group)}']").first).to_be_visible()

        page.goto(f"{base_url}/asset-groups")
        for group in GROUPS:
            expect(page.get_by_text(group, exact=True).first).to_be_visible()

        page.goto(f"{base_url}/asset-groups~{group_filter('dataset')}")
        for asset in ASSETS[:3]:
            expect(page.get_by_text(asset, exact=True).first).to_be_visible()
        page.get_by_role("button", name="Materialize all").click()
        expect(page.get_by_text("Launched run")).to_be_visible()
        run_link = page.locator("a[href^='/runs/']").first
        expect(run_link).to_be_visible()
        run_path = run_link.get_attribute("href")

        run_id = run_path.rsplit("/", 1)[-1]
        status = wait_for_run(home, run_id)
        assert status == dg.DagsterRunStatus.SUCCESS, (
            f"run {run_id} ended {status.value}; its events are in {tmp_path / 'dev.log'}"
        )
        page.goto(f"{base_url}{run_path}")
        expect(page.get_by_text("Success", exact=True).first).to_be_visible()
        expect(page.get_by_text("RUN_SUCCESS").first).to_be_visible()
        page.screenshot(path=screenshots / "dagster-ui-run.png")

        # Metadata shows as a table of values, not a JSON blob.
        page.goto(f"{base_url}/assets/training_dataset")
        expect(page.get_by_text("dataset_version", exact=True)).to_be_visible()
        expect(page.get_by_text("train_images", exact=True)).to_be_visible()
        # Plots are markdown with an embedded PNG: they must open as images, not text. The
        # class histogram is kept by delta in the catalogue and shown on raw_annotations.
        page.goto(f"{base_url}/assets/raw_annotations")
        histogram = page.locator("tr", has=page.get_by_text("class_histogram", exact=True))
        histogram.get_by_text("[Show Markdown]").click()
        plot = page.get_by_role("dialog").locator("img[src^='data:image/png']").first
        expect(plot).to_be_visible()
        # Finish the dialog's fade-in so the picture shows what a user sees.
        page.screenshot(path=screenshots / "dagster-ui-class-histogram.png", animations="disabled")
        page.keyboard.press("Escape")
        page.goto(f"{base_url}/asset-groups~{group_filter('dataset')}")
        expect(page.get_by_text("Materialized").first).to_be_visible()
        page.screenshot(path=screenshots / "dagster-ui-dataset-group.png")
        browser.close()

    with dg.DagsterInstance.from_config(str(home)) as instance:
        for asset in ASSETS[:3]:
            assert instance.get_latest_materialization_event(dg.AssetKey(asset)) is not None
