"""Client for the Azaion resource API (AZAION_FORMAT.md): login, upload, hardware-bound download;
and the reference server's additions: sealing a complete release, listing and deleting (admin).

Transport faults (connection errors, 429 with Retry-After, 502/503/504) are retried by urllib3's
``Retry`` with exponential backoff and jitter; an expired or revoked token (401/403) triggers
exactly one fresh login. Tokens and passwords never appear in logs, errors or reprs.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, Field, ValidationError
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from azaion_pipeline.lib.crypto import BLOCK_BYTES, IV_BYTES, api_key_string, decrypt_bytes
from azaion_pipeline.lib.hardware import hardware_string

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 502, 503, 504)
ModelT = TypeVar("ModelT", bound=BaseModel)


class ApiError(RuntimeError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class LoginResponse(BaseModel):
    token: str = Field(min_length=16)


class UploadResponse(BaseModel):
    folder: str
    filename: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class StoredFile(BaseModel):
    folder: str
    filename: str
    size: int = Field(ge=0)
    modified: float  # POSIX seconds
    sealed: bool  # part of a complete release: the server refuses to delete it


class StoredFiles(BaseModel):
    files: list[StoredFile]


def retrying_session(retries: int, backoff_s: float, jitter_s: float) -> requests.Session:
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_s,
        backoff_jitter=jitter_s,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,  # every call here is safe to repeat (login, idempotent upload, read)
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class AzaionApiClient:
    def __init__(
        self,
        url: str,
        email: str,
        password: str,
        *,
        timeout_s: float = 30.0,
        retries: int = 5,
        backoff_s: float = 0.5,
        jitter_s: float = 0.25,
        ca_bundle: str | None = None,
        verify_tls: bool = True,
    ):
        self.url = url.rstrip("/")
        self.email = email
        self._password = password
        self._timeout = (min(timeout_s, 10.0), timeout_s)  # (connect, read)
        self._retries = retries
        self._session = retrying_session(retries, backoff_s, jitter_s)
        # Passed on every request: requests lets REQUESTS_CA_BUNDLE override a session's verify.
        self._verify: str | bool = ca_bundle if (verify_tls and ca_bundle) else verify_tls
        self._token: str | None = None

    def __repr__(self) -> str:
        return f"AzaionApiClient(url={self.url!r}, email={self.email!r})"

    def close(self) -> None:
        self._session.close()

    def login(self) -> None:
        response = self._send(
            "POST", "/login", json={"email": self.email, "password": self._password}
        )
        if response.status_code != 200:
            raise ApiError(
                f"login as {self.email} failed: HTTP {response.status_code} {_detail(response)}",
                response.status_code,
            )
        self._token = _parse(LoginResponse, response, "/login").token
        log.info("logged in to %s as %s", self.url, self.email)

    def upload_file(self, folder: str, filename: str, data: bytes) -> UploadResponse:
        path = f"/resources/{_quote_folder(folder)}"
        response = self._authorized(
            "POST", path, files={"data": (filename, data, "application/octet-stream")}
        )
        uploaded = _parse(UploadResponse, response, path)
        if uploaded.sha256 != hashlib.sha256(data).hexdigest() or uploaded.size != len(data):
            raise ApiError(f"{path}/{filename}: the server stored different bytes than were sent")
        return uploaded

    def load_bytes(self, folder: str, filename: str, hardware: str | None = None) -> bytes:
        """The stored file, which the server encrypts with this user's per-machine key."""
        hardware = hardware or hardware_string()
        path = f"/resources/get/{_quote_folder(folder)}"
        body = {"filename": filename, "hardware": hardware, "password": self._password}
        try:
            response = self._authorized("POST", path, json=body)
        except ApiError as exc:  # the path names only the folder; say which file failed
            raise ApiError(f"loading {folder}/{filename}: {exc}", exc.status) from exc
        payload = response.content
        if len(payload) < IV_BYTES + BLOCK_BYTES or len(payload) % BLOCK_BYTES:
            raise ApiError(f"{path} {filename}: answer of {len(payload)} bytes is not a ciphertext")
        return decrypt_bytes(payload, api_key_string(self.email, self._password, hardware))

    def seal(self, folder: str) -> None:
        """Mark ``folder`` a complete release: the server keeps its files from now on."""
        self._authorized("POST", f"/seal/{_quote_folder(folder)}")

    def list_files(self, folder: str) -> list[StoredFile]:
        """Every file under ``folder``, sub-folders included (needs Admin or ApiAdmin)."""
        path = f"/admin/resources/{_quote_folder(folder)}"
        return _parse(StoredFiles, self._authorized("GET", path), path).files

    def delete_file(self, folder: str, filename: str) -> bool:
        """Remove one unsealed file (needs Admin or ApiAdmin); False when it was already gone."""
        path = f"/admin/resources/{_quote_folder(folder)}/{quote(filename, safe='')}"
        try:
            self._authorized("DELETE", path)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def _authorized(self, method: str, path: str, **kwargs) -> requests.Response:
        if self._token is None:
            self.login()
        response = self._send(method, path, auth=True, **kwargs)
        if response.status_code in (401, 403):
            log.info("%s %s answered %s; logging in again once", method, path, response.status_code)
            self.login()
            response = self._send(method, path, auth=True, **kwargs)
        if response.status_code != 200:
            raise ApiError(
                f"{method} {path} failed: HTTP {response.status_code} {_detail(response)}"
                + (
                    f" (after {self._retries} retries)"
                    if response.status_code in RETRY_STATUSES
                    else ""
                ),
                response.status_code,
            )
        return response

    def _send(self, method: str, path: str, auth: bool = False, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._token}"} if auth else {}
        try:
            return self._session.request(
                method,
                self.url + path,
                headers=headers,
                timeout=self._timeout,
                verify=self._verify,
                **kwargs,
            )
        except requests.RequestException as exc:
            # The exception text carries only the URL; the token lives in headers it does not print.
            raise ApiError(
                f"{method} {self.url}{path} failed: {type(exc).__name__}: {exc}"
            ) from exc


def _quote_folder(folder: str) -> str:
    return "/".join(quote(segment, safe="") for segment in folder.strip("/").split("/"))


def _detail(response: requests.Response) -> str:
    return response.text[:200].replace("\n", " ")


def _parse(model: type[ModelT], response: requests.Response, path: str) -> ModelT:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ApiError(f"{path}: unexpected answer from the API: {exc.errors()[:2]}") from exc
