"""The three endpoints of the Azaion resource API, plus an admin hardware reset."""

# No "from __future__ import annotations": FastAPI must see the local CallerDep alias at def time.
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from azaion_pipeline.devserver.users import ADMIN_ROLES, UPLOAD_ROLES, UserStore
from azaion_pipeline.lib.crypto import api_key_string, encrypt_bytes, hardware_hash

# One path segment: starts with a letter/digit (so never "." or ".."), then a safe alphabet.
SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
JWT_ALGORITHM = "HS256"
READ_CHUNK = 64 * 1024


class DevServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AZAION_DEVSERVER_")

    users_file: Path
    storage_dir: Path
    jwt_secret: SecretStr = Field(
        min_length=32, description="HS256 signing secret; never commit it."
    )
    token_ttl_s: int = 3600
    max_upload_bytes: int = 16 * 1024 * 1024


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


def _safe_path(root: Path, folder: str, filename: str | None = None) -> Path:
    segments = [s for s in folder.split("/") if s] + ([filename] if filename is not None else [])
    if not segments or not all(SEGMENT.match(s) for s in segments):
        raise HTTPException(400, f"invalid folder or file name {folder!r}/{filename!r}")
    path = root.joinpath(*segments).resolve()
    if not path.is_relative_to(root.resolve()):
        raise HTTPException(400, "path escapes the storage root")
    return path


def create_app(settings: DevServerSettings) -> FastAPI:
    users = UserStore(settings.users_file, settings.storage_dir / ".hardware_bindings.json")
    storage = settings.storage_dir
    secret = settings.jwt_secret.get_secret_value()
    bearer = HTTPBearer(auto_error=False)
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
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise HTTPException(401, "token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise HTTPException(401, "invalid token") from exc
        user = users.get(claims["sub"])
        if user is None:
            raise HTTPException(401, "user no longer exists")
        return Caller(email=claims["sub"], roles=user.roles)

    CallerDep = Annotated[Caller, Depends(caller)]

    @app.middleware("http")
    async def limit_upload_size(request: Request, call_next):
        # FastAPI spools a multipart body before any handler runs, so refuse big ones up front.
        if request.method == "POST" and request.url.path.startswith("/resources/"):
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                return JSONResponse({"detail": "uploads need a Content-Length"}, status_code=411)
            if int(length) > settings.max_upload_bytes + READ_CHUNK:
                return JSONResponse(
                    {"detail": f"upload larger than {settings.max_upload_bytes} bytes"},
                    status_code=413,
                )
        return await call_next(request)

    @app.post("/login")
    def login(body: LoginRequest) -> dict[str, str]:
        user = users.authenticate(body.email, body.password)
        if user is None:
            raise HTTPException(401, "wrong email or password")
        now = int(time.time())
        claims = {
            "sub": body.email,
            "roles": user.roles,
            "iat": now,
            "exp": now + settings.token_ttl_s,
        }
        return {"token": jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)}

    # Registered before the upload route: "/resources/get/..." must not be taken as a folder.
    @app.post("/resources/get/{folder:path}")
    def get_resource(folder: str, body: GetResourceRequest, who: CallerDep) -> Response:
        if users.authenticate(who.email, body.password) is None:
            raise HTTPException(403, "password does not match the token's user")
        if not users.bind_hardware(who.email, hardware_hash(body.hardware)):
            raise HTTPException(403, "user is bound to another machine; ask an admin to reset it")
        path = _safe_path(storage, folder, body.filename)
        if not path.is_file():
            raise HTTPException(404, f"{folder}/{body.filename} not found")
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
        path = _safe_path(storage, folder or "models", data.filename or "")
        digest, size = hashlib.sha256(), 0
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.uploading")
        try:
            with open(staging, "wb") as out:
                while block := await data.read(READ_CHUNK):
                    size += len(block)
                    if size > settings.max_upload_bytes:
                        raise HTTPException(
                            413, f"upload larger than {settings.max_upload_bytes} bytes"
                        )
                    digest.update(block)
                    out.write(block)
            os.replace(staging, path)
        finally:
            staging.unlink(missing_ok=True)
        return {"folder": folder, "filename": path.name, "size": size, "sha256": digest.hexdigest()}

    @app.post("/admin/users/{email}/reset-hardware")
    def reset_hardware(email: str, who: CallerDep) -> dict[str, bool]:
        if not ADMIN_ROLES & set(who.roles):
            raise HTTPException(403, "only Admin or ApiAdmin may reset a hardware binding")
        return {"reset": users.reset_hardware(email)}

    return app
