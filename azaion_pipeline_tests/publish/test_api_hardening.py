"""API hardening, over real HTTP: each test sends a request the server used to accept and shows it fails properly."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
from pydantic import ValidationError

from azaion_pipeline.devserver.app import DevServerSettings, create_app
from azaion_pipeline.devserver.server import serve_in_thread
from azaion_pipeline.devserver.users import add_user

from .conftest import admin_client, api_client
from .test_api import new_user


def login(url: str, email: str, password: str) -> requests.Response:
    return requests.post(f"{url}/login", json={"email": email, "password": password}, timeout=10)


def bearer(url: str, email: str, password: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {login(url, email, password).json()['token']}"}


def upload(url: str, headers, folder: str, name: str, data: bytes) -> requests.Response:
    return requests.post(
        f"{url}/resources/{folder}", headers=headers, files={"data": (name, data)}, timeout=30
    )


@pytest.fixture
def small_server(tmp_path):
    """A server of its own, so lockouts here never touch the shared stack."""
    users = tmp_path / "users.json"
    add_user(users, "victim@t.test", "right-password", ["ResourceUploader"])
    settings = DevServerSettings(
        users_file=users,
        storage_dir=tmp_path / "store",
        jwt_secret=secrets.token_urlsafe(40),
        login_account_failures=3,
        login_client_failures=5,
        login_lockout_s=1,
    )
    with serve_in_thread(create_app(settings)) as url:
        yield url


def test_guessing_one_account_locks_it_for_a_while(small_server):
    url = small_server
    for _ in range(3):
        assert login(url, "victim@t.test", "guess").status_code == 401
    # The right password used to succeed here, so guessing could go on at full speed.
    locked = login(url, "victim@t.test", "right-password")
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "1"
    time.sleep(float(locked.headers["Retry-After"]))
    assert login(url, "victim@t.test", "right-password").status_code == 200


def test_one_client_spraying_many_accounts_is_throttled(small_server):
    url = small_server
    for n in range(5):  # one failure per account: no account lock, but the client's limit
        assert login(url, f"user{n}@t.test", "guess").status_code == 401
    answer = login(url, "victim@t.test", "right-password")
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) >= 1


def _raw_request(url: str, head: str) -> str:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())  # the headers only: the promised body never comes
        return sock.recv(4096).decode(errors="replace")


@pytest.mark.parametrize(
    "route",
    [
        "POST /login",
        "POST /resources/models",
        "POST /resources/get/models",
        "POST /seal/models/x",
        "POST /admin/users/a@b.c/reset-hardware",
        "GET /admin/resources/models",
        "DELETE /admin/resources/models/x.small",
    ],
)
def test_every_route_refuses_a_huge_body_without_reading_it(stack, route):
    # Before, the server waited for (and read) all 150 MiB before answering 401.
    answer = _raw_request(
        stack["AZAION_API_URL"],
        f"{route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {150 * 1024 * 1024}\r\n\r\n",
    )
    assert answer.startswith("HTTP/1.1 413")


def test_a_body_without_a_length_is_refused(stack):
    chunked = _raw_request(
        stack["AZAION_API_URL"],
        "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    assert chunked.startswith("HTTP/1.1 411")


def test_two_concurrent_uploads_of_one_name_one_wins_whole(stack):
    url = stack["AZAION_API_URL"]
    headers = bearer(url, stack["AZAION_API_EMAIL"], stack["AZAION_API_PASSWORD"])
    bodies = [bytes([n]) * (4 * 1024 * 1024) for n in (1, 2)]
    start, answers = threading.Barrier(2), {}

    def send(body: bytes) -> None:
        start.wait()
        answers[body[0]] = upload(url, headers, "models/race", "r.small", body)

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Before, both got 200 and the stored bytes could match neither upload.
    assert sorted(a.status_code for a in answers.values()) == [200, 409]
    winner = next(n for n, a in answers.items() if a.status_code == 200)
    folder = Path(stack["AZAION_DEVSTACK_STORAGE_DIR"]) / "models" / "race"
    assert (folder / "r.small").read_bytes() == bodies[winner - 1]
    assert [p.name for p in folder.iterdir()] == ["r.small"], "a staging file was left behind"


def test_a_published_name_cannot_be_overwritten(stack):
    client = api_client(stack)
    client.upload_file("models/immutable", "m.small", b"first")
    url = stack["AZAION_API_URL"]
    headers = bearer(url, stack["AZAION_API_EMAIL"], stack["AZAION_API_PASSWORD"])
    # Before, this replaced the published bytes with a 200.
    assert upload(url, headers, "models/immutable", "m.small", b"second").status_code == 409
    assert client.load_bytes("models/immutable", "m.small") == b"first"
    # The same bytes again are a retried upload, not an overwrite.
    assert upload(url, headers, "models/immutable", "m.small", b"first").status_code == 200


def test_a_password_change_revokes_earlier_tokens(stack):
    email, password = new_user(stack, "ResourceUploader")
    url = stack["AZAION_API_URL"]
    headers = bearer(url, email, password)
    assert upload(url, headers, "models/revoke", "a.small", b"1").status_code == 200
    add_user(
        Path(stack["AZAION_DEVSTACK_USERS_FILE"]), email, "a-new-password", ["ResourceUploader"]
    )
    # Before, the old token kept working until it expired.
    refused = upload(url, headers, "models/revoke", "b.small", b"2")
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    fresh = bearer(url, email, "a-new-password")
    assert upload(url, fresh, "models/revoke", "b.small", b"2").status_code == 200


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("models/shapes/taken.small", "under-a-file.small"),  # a published file as a folder
        ("models", "shapes"),  # a name that is an existing folder
        ("", "shapes"),  # the default folder, same clash
        ("/".join(["deep"] * 9), "x.small"),  # deeper than any real folder
    ],
)
def test_malformed_paths_get_a_4xx(stack, folder, name):
    url = stack["AZAION_API_URL"]
    headers = bearer(url, stack["AZAION_API_EMAIL"], stack["AZAION_API_PASSWORD"])
    upload(url, headers, "models/shapes", "taken.small", b"taken")
    # The first three used to answer 500.
    assert upload(url, headers, folder, name, b"1").status_code in (400, 409)


def test_a_404_lookup_does_not_bind_the_account(stack):
    email, password = new_user(stack)
    api_client(stack).upload_file("models/bind", "real.small", b"model")
    url = stack["AZAION_API_URL"]
    headers = bearer(url, email, password)
    missing = requests.post(
        f"{url}/resources/get/models/bind",
        headers=headers,
        json={"filename": "missing.small", "hardware": "machine-A", "password": password},
        timeout=10,
    )
    assert missing.status_code == 404
    # Before, the 404 above had bound the account to machine-A and this got 403.
    found = requests.post(
        f"{url}/resources/get/models/bind",
        headers=headers,
        json={"filename": "real.small", "hardware": "machine-B", "password": password},
        timeout=10,
    )
    assert found.status_code == 200


def test_no_secret_in_errors(stack, tmp_path):
    short_secret = "too-short-but-still-a-secret"
    with pytest.raises(ValidationError) as error:
        DevServerSettings(
            users_file=tmp_path / "u.json", storage_dir=tmp_path, jwt_secret=short_secret
        )
    assert short_secret not in str(error.value) and "jwt_secret" in str(error.value)
    # A request missing a field used to echo the whole body, password included, in its 422.
    url, password = stack["AZAION_API_URL"], stack["AZAION_API_PASSWORD"]
    for path, body in (
        ("/login", {"password": password}),
        ("/resources/get/models", {"password": password, "hardware": "hw"}),
    ):
        answer = requests.post(
            url + path,
            json=body,
            headers=bearer(url, stack["AZAION_API_EMAIL"], password),
            timeout=10,
        )
        assert answer.status_code == 422 and password not in answer.text


def test_only_an_admin_deletes_and_only_what_no_complete_release_holds(stack):
    folder = f"models/del{secrets.token_hex(4)}"
    pipeline, admin = api_client(stack), admin_client(stack)
    pipeline.upload_file(f"{folder}/v1", "abandoned.small", b"half a publish")
    pipeline.upload_file(f"{folder}/v2", "released.small", b"a complete release")
    pipeline.seal(f"{folder}/v2")
    url = stack["AZAION_API_URL"]
    uploader = bearer(url, stack["AZAION_API_EMAIL"], stack["AZAION_API_PASSWORD"])
    delete = f"{url}/admin/resources/{folder}/v1/abandoned.small"
    # Before there was no way to remove a .small at all; an uploader still may not.
    assert requests.delete(delete, headers=uploader, timeout=10).status_code == 403
    assert (
        requests.get(f"{url}/admin/resources/{folder}", headers=uploader, timeout=10).status_code
        == 403
    )

    listed = {(f.folder, f.filename, f.sealed) for f in admin.list_files(folder)}
    assert listed == {
        (f"{folder}/v1", "abandoned.small", False),
        (f"{folder}/v2", "released.small", True),
    }
    assert admin.delete_file(f"{folder}/v1", "abandoned.small") is True
    assert admin.delete_file(f"{folder}/v1", "abandoned.small") is False  # already gone
    assert not (Path(stack["AZAION_DEVSTACK_STORAGE_DIR"]) / folder / "v1").exists()

    admin_headers = bearer(url, stack["AZAION_API_ADMIN_EMAIL"], stack["AZAION_API_ADMIN_PASSWORD"])
    refused = requests.delete(
        f"{url}/admin/resources/{folder}/v2/released.small", headers=admin_headers, timeout=10
    )
    assert refused.status_code == 409 and "complete release" in refused.json()["detail"]
    # A sealed release takes no new name either.
    assert upload(url, uploader, f"{folder}/v2", "extra.small", b"x").status_code == 409
    assert pipeline.load_bytes(f"{folder}/v2", "released.small") == b"a complete release"
    assert [f.filename for f in admin.list_files(folder)] == ["released.small"]


@pytest.mark.parametrize("path", ["models/x/..%2F..%2Fusers.json", "models/.sealed", "a/b/.x"])
def test_malformed_delete_paths_get_a_4xx(stack, path):
    url = stack["AZAION_API_URL"]
    headers = bearer(url, stack["AZAION_API_ADMIN_EMAIL"], stack["AZAION_API_ADMIN_PASSWORD"])
    answer = requests.delete(f"{url}/admin/resources/{path}", headers=headers, timeout=10)
    assert 400 <= answer.status_code < 500
