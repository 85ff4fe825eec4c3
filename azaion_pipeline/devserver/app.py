"""The three endpoints of the Azaion resource API, plus sealing and the admin routes (hardware
reset, listing and deleting what failed publishes left).

A folder holding SEALED_MARK belongs to a complete release: it takes no new file and none of its
files can be deleted, so only unpublished or abandoned names can go.
"""

# No "from __future__ import annotations": FastAPI must see the local CallerDep alias at def time.
import contextlib
import hashlib
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from azaion_pipeline.devserver.throttle import LoginThrottle
from azaion_pipeline.devserver.users import ADMIN_ROLES, UPLOAD_ROLES, UserStore
from azaion_pipeline.lib.crypto import api_key_string, encrypt_bytes, hardware_hash
from azaion_pipeline.lib.hashing import sha256_file

# One path segment: starts with a letter/digit (so never "." or ".."), then a safe alphabet.
SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_SEGMENTS = 8  # keeps every stored path far below the OS path length limit
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JWT_ALGORITHM = "HS256"
READ_CHUNK = 64 * 1024
# Starts with a dot, which SEGMENT never matches: no client can upload, get or delete it.
SEALED_MARK = ".sealed"


class DevServerSettings(BaseSettings):
    # hide_input_in_errors: a rejected value (say a too-short JWT secret) is never printed.
    model_config = SettingsConfigDict(env_prefix="AZAION_DEVSERVER_", hide_input_in_errors=True)

    users_file: Path
    storage_dir: Path
    jwt_secret: SecretStr = Field(
        min_length=32, description="HS256 signing secret; never commit it."
    )
    token_ttl_s: int = 3600
    max_upload_bytes: int = 16 * 1024 * 1024
    max_json_bytes: int = Field(64 * 1024, description="body limit of every non-upload route")
    login_account_failures: int = Field(
        5, ge=1, description="failed logins before an account locks"
    )
    login_client_failures: int = Field(20, ge=1, description="failed logins before a client locks")
    login_window_s: float = Field(300, gt=0, description="window the failures are counted in")
    login_lockout_s: float = Field(300, gt=0, description="how long a locked key waits")


class LoginRequest(BaseModel):
    email: str
    password: str


class GetResourceRequest(BaseModel):
    filename: str = Field(validation_alias=AliasChoices("filename", "fileName"))
    hardware: str = Field(min_length=1, max_length=4096)
    # The per-user key is derived from the password, so the caller proves it on every download.
    password: str


class Caller(BaseModel):
    email: str
    roles: list[str]


class StoredFile(BaseModel):
    folder: str
    filename: str
    size: int
    modified: float  # POSIX seconds
    sealed: bool


def _safe_path(root: Path, folder: str, filename: str | None = None) -> Path:
    segments = [s for s in folder.split("/") if s] + ([filename] if filename is not None else [])
    if not 0 < len(segments) <= MAX_SEGMENTS or not all(SEGMENT.match(s) for s in segments):
        raise HTTPException(400, f"invalid folder or file name {folder!r}/{filename!r}")
    path = root.joinpath(*segments).resolve()
    if not path.is_relative_to(root.resolve()):
        raise HTTPException(400, "path escapes the storage root")
    return path


def _publish(staging: Path, path: Path, sha256: str, shown: str) -> None:
    """Give the finished upload its name atomically; a name already taken is never replaced."""
    try:
        os.link(staging, path)  # atomic and never clobbers: of two racing uploads, one wins whole
    except FileExistsError:
        if path.is_file() and sha256_file(path) == sha256:
            return  # the same bytes again: a client retrying an upload whose answer it lost
        raise HTTPException(
            409, f"{shown} is already published; published names are immutable"
        ) from None


def _stored_files(storage: Path, root: Path) -> list[StoredFile]:
    files = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and SEGMENT.match(path.name):  # not staging files, not seal marks
            stat = path.stat()
            files.append(
                StoredFile(
                    folder=path.parent.relative_to(storage.resolve()).as_posix(),
                    filename=path.name,
                    size=stat.st_size,
                    modified=stat.st_mtime,
                    sealed=(path.parent / SEALED_MARK).exists(),
                )
            )
    return files


def create_app(settings: DevServerSettings) -> FastAPI:
    users = UserStore(settings.users_file, settings.storage_dir / ".hardware_bindings.json")
    storage = settings.storage_dir
    secret = settings.jwt_secret.get_secret_value()
    throttle = LoginThrottle(
        account_failures=settings.login_account_failures,
        client_failures=settings.login_client_failures,
        window_s=settings.login_window_s,
        lockout_s=settings.login_lockout_s,
    )
    bearer = HTTPBearer(auto_error=False)
    seal_lock = threading.Lock()  # a delete never runs between a seal's check and its mark
    app = FastAPI(title="Azaion resource API (reference)")

    def caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        if credentials is None:
            raise HTTPException(401, "missing bearer token")
        try:
            claims = jwt.decode(
                credentials.credentials,
                secret,
                algorithms=[JWT_ALGORITHM],
                options={"require": ["exp", "sub", "ver"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise HTTPException(401, "token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise HTTPException(401, "invalid token") from exc
        user = users.get(claims["sub"])
        if user is None:
            raise HTTPException(401, "user no longer exists")
        if claims["ver"] != user.token_version:
            raise HTTPException(401, "token revoked: the password changed since it was issued")
        return Caller(email=claims["sub"], roles=user.roles)

    CallerDep = Annotated[Caller, Depends(caller)]

    def body_limit(path: str) -> int:
        is_upload = path.startswith("/resources/") and not path.startswith("/resources/get/")
        # A multipart body carries a little framing around the file itself.
        return settings.max_upload_bytes + READ_CHUNK if is_upload else settings.max_json_bytes

    @app.middleware("http")
    async def limit_body_size(request: Request, call_next):
        # Answer from the headers alone, before any byte of the body is read or spooled.
        length = request.headers.get("content-length")
        if request.method in BODY_METHODS and length is None:
            return JSONResponse({"detail": "requests with a body need a Content-Length"}, 411)
        if length is not None and not length.isdigit():
            return JSONResponse({"detail": "Content-Length is not a number"}, 400)
        limit = body_limit(request.url.path)
        if length is not None and int(length) > limit:
            return JSONResponse({"detail": f"body larger than {limit} bytes"}, 413)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes the input, and the input may hold a password.
        errors = [{"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, 422)

    @app.post("/login")
    def login(body: LoginRequest, request: Request) -> dict[str, str]:
        client = request.client.host if request.client else "unknown"
        wait = throttle.retry_after(body.email, client)
        if wait is not None:
            raise HTTPException(
                429, "too many failed logins; try again later", {"Retry-After": str(wait)}
            )
        user = users.authenticate(body.email, body.password)
        if user is None:
            throttle.failed(body.email, client)
            raise HTTPException(401, "wrong email or password")
        throttle.succeeded(body.email)
        now = int(time.time())
        claims = {
            "sub": body.email,
            "roles": user.roles,
            "ver": user.token_version,
            "iat": now,
            "exp": now + settings.token_ttl_s,
        }
        return {"token": jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)}

    # Registered before the upload route: "/resources/get/..." must not be taken as a folder.
    @app.post("/resources/get/{folder:path}")
    def get_resource(folder: str, body: GetResourceRequest, who: CallerDep) -> Response:
        if users.authenticate(who.email, body.password) is None:
            raise HTTPException(403, "password does not match the token's user")
        path = _safe_path(storage, folder, body.filename)
        if not path.is_file():
            raise HTTPException(404, f"{folder}/{body.filename} not found")
        # Only a download that will succeed binds the account to this machine.
        if not users.bind_hardware(who.email, hardware_hash(body.hardware)):
            raise HTTPException(403, "user is bound to another machine; ask an admin to reset it")
        key = api_key_string(who.email, body.password, body.hardware)
        return Response(
            encrypt_bytes(path.read_bytes(), key), media_type="application/octet-stream"
        )

    @app.post("/resources/{folder:path}")
    async def upload_resource(
        folder: str, who: CallerDep, data: Annotated[UploadFile, File()]
    ) -> dict[str, str | int]:
        if not UPLOAD_ROLES & set(who.roles):
            raise HTTPException(403, "uploading needs ResourceUploader, Admin or ApiAdmin")
        path = _safe_path(storage, folder.strip("/") or "models", data.filename or "")
        shown = f"{folder}/{path.name}"
        if (path.parent / SEALED_MARK).exists():
            raise HTTPException(409, f"{folder} is a complete release; it takes no new file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise HTTPException(409, f"a published file is in the way of {shown}") from exc
        digest, size = hashlib.sha256(), 0
        # A staging file of its own per upload: concurrent uploads never write into one file.
        fd, staging_name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".uploading"
        )
        staging = Path(staging_name)
        try:
            with os.fdopen(fd, "wb") as out:
                while block := await data.read(READ_CHUNK):
                    size += len(block)
                    if size > settings.max_upload_bytes:
                        raise HTTPException(
                            413, f"upload larger than {settings.max_upload_bytes} bytes"
                        )
                    digest.update(block)
                    out.write(block)
            _publish(staging, path, digest.hexdigest(), shown)
        finally:
            staging.unlink(missing_ok=True)
        return {"folder": folder, "filename": path.name, "size": size, "sha256": digest.hexdigest()}

    @app.post("/seal/{folder:path}")
    def seal(folder: str, who: CallerDep) -> dict[str, str]:
        """The publisher marks a release complete: from now on its files cannot be deleted."""
        if not UPLOAD_ROLES & set(who.roles):
            raise HTTPException(403, "sealing needs ResourceUploader, Admin or ApiAdmin")
        path = _safe_path(storage, folder)
        if not path.is_dir():
            raise HTTPException(404, f"{folder} not found")
        with seal_lock:
            (path / SEALED_MARK).touch()
        return {"sealed": folder}

    def require_admin(who: Caller, what: str) -> None:
        if not ADMIN_ROLES & set(who.roles):
            raise HTTPException(403, f"only Admin or ApiAdmin may {what}")

    @app.get("/admin/resources/{folder:path}")
    def list_resources(folder: str, who: CallerDep) -> dict[str, list[StoredFile]]:
        require_admin(who, "list stored files")
        path = _safe_path(storage, folder)
        return {"files": _stored_files(storage, path) if path.is_dir() else []}

    @app.delete("/admin/resources/{folder:path}/{filename}")
    def delete_resource(folder: str, filename: str, who: CallerDep) -> dict[str, str]:
        require_admin(who, "delete stored files")
        path = _safe_path(storage, folder, filename)
        with seal_lock:
            if (path.parent / SEALED_MARK).exists():
                raise HTTPException(
                    409, f"{folder}/{filename} belongs to a complete release; it is immutable"
                )
            try:
                path.unlink()
            except (FileNotFoundError, IsADirectoryError) as exc:
                raise HTTPException(404, f"{folder}/{filename} not found") from exc
            with contextlib.suppress(OSError):  # the release folder, once its last file went
                path.parent.rmdir()
        return {"deleted": f"{folder}/{filename}"}

    @app.post("/admin/users/{email}/reset-hardware")
    def reset_hardware(email: str, who: CallerDep) -> dict[str, bool]:
        require_admin(who, "reset a hardware binding")
        return {"reset": users.reset_hardware(email)}

    return app
