"""Run alerts: one JSON document per event, POSTed to a webhook with retries.

The webhook URL often embeds a secret (Slack, Teams, ntfy tokens): it is never logged or
put into an error message.
"""

from __future__ import annotations

from typing import Literal

import urllib3
from pydantic import BaseModel, Field

RETRY_STATUSES = (408, 425, 429, 500, 502, 503, 504)


class AlertPayload(BaseModel):
    status: Literal["failure", "published"]
    run_id: str
    job: str
    assets: list[str] = Field(default_factory=list)
    metrics: dict[str, float | int | str] = Field(default_factory=dict)
    message: str = ""
    ui_url: str


class AlertDeliveryError(RuntimeError):
    pass


def post_alert(
    url: str,
    payload: AlertPayload,
    *,
    retries: int = 4,
    backoff_seconds: float = 0.5,
    timeout_seconds: float = 10.0,
) -> int:
    """POST ``payload``; transient failures (connection errors, 429, 5xx) are retried with backoff."""
    retry = urllib3.Retry(
        total=retries,
        backoff_factor=backoff_seconds,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,  # POST too: receivers dedupe on run_id + status
        raise_on_status=False,
    )
    http = urllib3.PoolManager(retries=retry, timeout=urllib3.Timeout(total=timeout_seconds))
    try:
        response = http.request(
            "POST",
            url,
            body=payload.model_dump_json().encode(),
            headers={"Content-Type": "application/json"},
        )
    except urllib3.exceptions.HTTPError as exc:
        raise AlertDeliveryError(
            f"alert for run {payload.run_id} not delivered after {retries} retries: {type(exc).__name__}"
        ) from None
    finally:
        http.clear()
    if response.status >= 400:
        raise AlertDeliveryError(
            f"alert for run {payload.run_id} rejected by the webhook: HTTP {response.status}"
        )
    return response.status
