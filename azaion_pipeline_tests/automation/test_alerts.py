"""Alert sensors post to a real HTTP receiver on 127.0.0.1, retrying transient failures."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from azaion_pipeline.defs.automation.alerts import publish_alert, run_failure_alert
from azaion_pipeline.defs.automation.resources import AlertWebhook
from azaion_pipeline.lib.alerts import AlertDeliveryError, AlertPayload, post_alert


class Receiver:
    """A webhook that answers with the scripted statuses, then 200, and keeps what it got."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.received: list[dict] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.received.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=()):
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for r in made:
        r.close()


def webhook(url: str | None) -> AlertWebhook:
    return AlertWebhook(url=url, ui_url="http://dagster.example:3000", retries=3)


@dg.asset(name="trained_model")
def failing_trained_model() -> None:
    raise RuntimeError("CUDA out of memory (batch 12)")


@dg.asset(name="published_model")
def tiny_published_model() -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"version": "2026-11-23", "model_version": "m7", "size_bytes": 1234, "path": "/x"}
    )


def failure_context(instance, alert_webhook):
    result = dg.materialize([failing_trained_model], instance=instance, raise_on_error=False)
    assert not result.success
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"alert_webhook": alert_webhook},
    ).for_run_failure()


def test_failure_reaches_the_webhook_after_transient_errors(instance, receiver):
    hook = receiver(statuses=[503, 502])
    context = failure_context(instance, webhook(hook.url))
    assert run_failure_alert(context) is None
    assert hook.attempts == 3
    [payload] = hook.received
    run_id = context.dagster_run.run_id
    assert payload["status"] == "failure"
    assert payload["run_id"] == run_id
    assert payload["job"] == context.dagster_run.job_name
    assert "trained_model" in payload["message"]
    assert payload["assets"] == ["trained_model"]
    assert payload["metrics"]["failed_steps"] == "trained_model"
    assert payload["ui_url"] == f"http://dagster.example:3000/runs/{run_id}"


def test_failure_without_a_webhook_is_a_skip_that_says_why(instance):
    skip = run_failure_alert(failure_context(instance, webhook(None)))
    assert "AZAION_WEBHOOK_URL is not set" in skip.skip_message


def test_a_run_that_published_posts_its_version(instance, receiver):
    hook = receiver()
    result = dg.materialize([tiny_published_model], instance=instance)
    context = dg.build_run_status_sensor_context(
        sensor_name="publish_alert",
        dagster_event=result.get_run_success_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"alert_webhook": webhook(hook.url)},
    )
    publish_alert(context)
    [payload] = hook.received
    assert payload["status"] == "published"
    assert payload["message"] == "published model 2026-11-23"
    assert payload["metrics"] == {
        "published_model.version": "2026-11-23",
        "published_model.model_version": "m7",
        "published_model.size_bytes": 1234,
    }


def test_delivery_gives_up_with_a_clear_error_that_hides_the_url(receiver):
    hook = receiver(statuses=[500] * 10)
    payload = AlertPayload(status="failure", run_id="r1", job="j", ui_url="http://ui/runs/r1")
    with pytest.raises(AlertDeliveryError) as error:
        post_alert(hook.url + "?token=s3cret", payload, retries=2, backoff_seconds=0)
    assert "r1" in str(error.value)
    assert "s3cret" not in str(error.value)
    assert hook.attempts == 3
