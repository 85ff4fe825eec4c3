"""API hardening: password guesses an attacker gets checked per second, throttled vs unthrottled.

Two reference API servers on loopback, the same users and scrypt cost; one with the default
login throttling, one with limits too high to trigger (the baseline, as before the hardening).
One client guesses one account's password for ``BENCH_LOGIN_SECONDS`` (default 5) on each.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path

SECONDS = float(os.environ.get("BENCH_LOGIN_SECONDS", 5))
NEVER = 10**9


def _guess_for(url: str, seconds: float) -> tuple[int, int]:
    """(guesses the server checked, guesses it refused unread) within ``seconds``."""
    import requests

    checked = refused = 0
    deadline = time.perf_counter() + seconds
    with requests.Session() as session:
        while time.perf_counter() < deadline:
            answer = session.post(
                f"{url}/login",
                json={"email": "victim@bench.test", "password": secrets.token_hex(8)},
                timeout=30,
            )
            if answer.status_code == 401:
                checked += 1
            elif answer.status_code == 429:
                refused += 1
    return checked, refused


def main() -> None:
    from azaion_pipeline.devserver.app import DevServerSettings, create_app
    from azaion_pipeline.devserver.server import serve_in_thread
    from azaion_pipeline.devserver.users import add_user

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        users = Path(tmp) / "users.json"
        add_user(users, "victim@bench.test", secrets.token_urlsafe(16), ["Operator"])
        for name, limits in (
            (
                "unthrottled (baseline)",
                {"login_account_failures": NEVER, "login_client_failures": NEVER},
            ),
            ("throttled (defaults)", {}),
        ):
            settings = DevServerSettings(
                users_file=users,
                storage_dir=Path(tmp) / name.split()[0],
                jwt_secret=secrets.token_urlsafe(40),
                **limits,
            )
            with serve_in_thread(create_app(settings)) as url:
                results[name] = _guess_for(url, SECONDS)
    for name, (checked, refused) in results.items():
        print(
            f"{name:24s} {checked / SECONDS:7.1f} guesses checked/s "
            f"({checked} checked, {refused} refused with 429) in {SECONDS:.0f} s"
        )
    baseline = results["unthrottled (baseline)"][0]
    throttled = results["throttled (defaults)"][0]
    print(f"ratio: the throttled server checks {throttled / baseline:.3f}x the guesses")
    defaults = DevServerSettings.model_fields
    per_lockout = defaults["login_account_failures"].default / defaults["login_lockout_s"].default
    print(f"sustained bound per account: {per_lockout:.3f} guesses/s (failures per lockout)")


if __name__ == "__main__":
    main()
