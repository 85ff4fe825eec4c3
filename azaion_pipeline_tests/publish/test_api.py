"""The API client against the reference server over real HTTP: retries, re-login, binding, limits."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest
import requests

from azaion_pipeline.devserver.app import DevServerSettings, create_app
from azaion_pipeline.devserver.server import serve_in_thread
from azaion_pipeline.devserver.users import add_user
from azaion_pipeline.lib.api_client import ApiError, AzaionApiClient

from .conftest import api_client


def new_user(env: dict[str, str], role: str = "Operator") -> tuple[str, str]:
    email, password = f"{secrets.token_hex(4)}@edge.test", secrets.token_urlsafe(12)
    add_user(Path(env["AZAION_DEVSTACK_USERS_FILE"]), email, password, [role])
    return email, password


def test_users_file_holds_no_plaintext_password(stack):
    text = Path(stack["AZAION_DEVSTACK_USERS_FILE"]).read_text()
    assert stack["AZAION_API_PASSWORD"] not in text
    assert json.loads(text)["users"][stack["AZAION_API_EMAIL"]]["password_hash"]


def test_upload_then_hardware_bound_download(stack):
    client = api_client(stack)
    answer = client.upload_file("models/t1", "x.small", b"small part bytes")
    assert answer.size == 16
    # This machine's string: the pipeline user binds to it, as the roundtrip check does later.
    assert client.load_bytes("models/t1", "x.small") == b"small part bytes"


def test_expired_token_relogs_in_once(tmp_path):
    add_user(tmp_path / "users.json", "u@t.test", "password-1", ["ResourceUploader"])
    settings = DevServerSettings(
        users_file=tmp_path / "users.json",
        storage_dir=tmp_path / "store",
        jwt_secret="s" * 40,
        token_ttl_s=1,
    )
    with serve_in_thread(create_app(settings)) as url:
        client = AzaionApiClient(url, "u@t.test", "password-1")
        client.upload_file("models", "a.small", b"1")
        first_token = client._token
        time.sleep(1.5)  # the real token expires: the server answers 401 once
        client.upload_file("models", "b.small", b"2")
        assert client._token != first_token
        assert (tmp_path / "store" / "models" / "b.small").read_bytes() == b"2"


def test_503_twice_then_success(stack, injected):
    injected.fail("/resources/", 503, times=2)
    api_client(stack).upload_file("models/t2", "y.small", b"abc")
    assert injected.hits == 2


def test_429_retry_after_is_honoured(stack, injected):
    injected.fail("/resources/", 429, times=1, headers=[(b"retry-after", b"1")])
    started = time.perf_counter()
    api_client(stack).upload_file("models/t3", "z.small", b"abc")
    assert injected.hits == 1 and time.perf_counter() - started >= 1.0


def test_503_forever_fails_with_a_clear_error(stack, injected):
    injected.fail("/resources/", 503)
    with pytest.raises(ApiError, match=r"HTTP 503.*after 2 retries") as error:
        api_client(stack, retries=2).upload_file("models/t4", "w.small", b"abc")
    assert error.value.status == 503 and injected.hits == 3
    assert stack["AZAION_API_PASSWORD"] not in str(error.value)


def test_another_machine_gets_403_until_admin_resets(stack):
    email, password = new_user(stack)
    api_client(stack).upload_file("models/t5", "m.small", b"model")
    edge = AzaionApiClient(stack["AZAION_API_URL"], email, password)
    assert edge.load_bytes("models/t5", "m.small", hardware="machine-A") == b"model"
    with pytest.raises(ApiError, match="bound to another machine") as error:
        edge.load_bytes("models/t5", "m.small", hardware="machine-B")
    assert error.value.status == 403

    admin_token = requests.post(
        stack["AZAION_API_URL"] + "/login",
        json={
            "email": stack["AZAION_API_ADMIN_EMAIL"],
            "password": stack["AZAION_API_ADMIN_PASSWORD"],
        },
        timeout=10,
    ).json()["token"]
    reset = requests.post(
        f"{stack['AZAION_API_URL']}/admin/users/{email}/reset-hardware",
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=10,
    )
    assert reset.json() == {"reset": True}
    assert edge.load_bytes("models/t5", "m.small", hardware="machine-B") == b"model"


def test_operator_cannot_upload_and_wrong_password_cannot_log_in(stack):
    email, password = new_user(stack, "Operator")
    with pytest.raises(ApiError) as error:
        AzaionApiClient(stack["AZAION_API_URL"], email, password).upload_file("models", "o", b"1")
    assert error.value.status == 403
    with pytest.raises(ApiError, match=r"login .* failed: HTTP 401"):
        AzaionApiClient(stack["AZAION_API_URL"], email, "wrong-password").login()


@pytest.mark.parametrize(
    "path", ["/resources/..%2F..%2Fetc", "/resources/models/%2e%2e/%2e%2e", "/resources/.hidden"]
)
def test_path_traversal_is_rejected(stack, path):
    client = api_client(stack)
    client.login()
    response = requests.post(
        stack["AZAION_API_URL"] + path,
        headers={"Authorization": f"Bearer {client._token}"},
        files={"data": ("x.small", b"1")},
        timeout=10,
    )
    assert response.status_code in (400, 404)
    assert not (Path(stack["AZAION_DEVSTACK_STORAGE_DIR"]).parent / "etc").exists()


def test_traversal_in_file_name_and_oversized_upload(stack):
    client = api_client(stack)
    with pytest.raises(ApiError, match="HTTP 400"):
        client.upload_file("models", "../../escape.small", b"1")
    with pytest.raises(ApiError, match="HTTP 413"):
        client.upload_file("models", "huge.small", b"0" * (17 * 1024 * 1024))


def self_signed(folder: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_tls_is_verified_and_a_ca_bundle_can_be_pinned(tmp_path):
    add_user(tmp_path / "users.json", "u@t.test", "password-1", ["ResourceUploader"])
    settings = DevServerSettings(
        users_file=tmp_path / "users.json", storage_dir=tmp_path / "store", jwt_secret="s" * 40
    )
    cert, key = self_signed(tmp_path)
    with serve_in_thread(create_app(settings), ssl_certfile=str(cert), ssl_keyfile=str(key)) as url:
        assert url.startswith("https://")
        with pytest.raises(ApiError, match="SSLError"):
            AzaionApiClient(url, "u@t.test", "password-1", retries=0).login()
        pinned = AzaionApiClient(url, "u@t.test", "password-1", ca_bundle=str(cert))
        assert pinned.upload_file("models", "tls.small", b"over TLS").size == 8
