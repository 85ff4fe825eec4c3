"""Users in a JSON file with salted scrypt password hashes, and each user's bound hardware."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from pathlib import Path

from pydantic import BaseModel, Field

ROLES = ("ApiAdmin", "Admin", "ResourceUploader", "Validator", "Operator")
UPLOAD_ROLES = frozenset({"ResourceUploader", "Admin", "ApiAdmin"})
ADMIN_ROLES = frozenset({"Admin", "ApiAdmin"})
# scrypt parameters: ~16 MiB and a few tens of ms per check, the stdlib's well-kept KDF.
SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class UserRecord(BaseModel):
    salt: str
    password_hash: str
    roles: list[str] = Field(min_length=1)
    # Bumped on every password change; tokens carry it, so older tokens stop working.
    token_version: int = 0


class UsersFile(BaseModel):
    users: dict[str, UserRecord] = {}


def hash_password(password: str, salt: bytes) -> str:
    return hashlib.scrypt(password.encode(), salt=salt, **SCRYPT).hex()


def _write_json(path: Path, payload: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(path.suffix + ".tmp")
    staging.write_text(payload)
    os.chmod(staging, 0o600)
    os.replace(staging, path)


def add_user(users_file: Path, email: str, password: str, roles: list[str]) -> None:
    """Create or replace a user; only the salt and the scrypt hash are stored.

    Replacing a user is a password change: every token issued before it is revoked.
    """
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(unknown)}; known: {', '.join(ROLES)}")
    if len(password) < 8:
        raise ValueError("password must be at least 8 characters")
    users = (
        UsersFile.model_validate_json(users_file.read_text())
        if users_file.exists()
        else UsersFile()
    )
    salt = secrets.token_bytes(16)
    previous = users.users.get(email)
    users.users[email] = UserRecord(
        salt=salt.hex(),
        password_hash=hash_password(password, salt),
        roles=roles,
        token_version=previous.token_version + 1 if previous else 0,
    )
    _write_json(users_file, users.model_dump_json(indent=2))


class UserStore:
    def __init__(self, users_file: Path, bindings_file: Path):
        self._users_file = users_file
        self._bindings_file = bindings_file
        self._lock = threading.Lock()

    def _users(self) -> dict[str, UserRecord]:
        # Re-read on each call so users added by the CLI take effect without a restart.
        return UsersFile.model_validate_json(self._users_file.read_text()).users

    def get(self, email: str) -> UserRecord | None:
        return self._users().get(email)

    def authenticate(self, email: str, password: str) -> UserRecord | None:
        user = self.get(email)
        if user is None:
            hash_password(password, b"\0" * 16)  # same work for unknown users: no timing oracle
            return None
        candidate = hash_password(password, bytes.fromhex(user.salt))
        return user if hmac.compare_digest(candidate, user.password_hash) else None

    def _bindings(self) -> dict[str, str]:
        return json.loads(self._bindings_file.read_text()) if self._bindings_file.exists() else {}

    def bind_hardware(self, email: str, hw_hash: str) -> bool:
        """Bind on first sight; afterwards True only for the bound machine."""
        with self._lock:
            bindings = self._bindings()
            bound = bindings.setdefault(email, hw_hash)
            if bound == hw_hash:
                _write_json(self._bindings_file, json.dumps(bindings, indent=2))
            return hmac.compare_digest(bound, hw_hash)

    def reset_hardware(self, email: str) -> bool:
        with self._lock:
            bindings = self._bindings()
            found = bindings.pop(email, None) is not None
            _write_json(self._bindings_file, json.dumps(bindings, indent=2))
            return found
