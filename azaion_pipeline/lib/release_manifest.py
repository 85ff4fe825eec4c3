"""A signed manifest per published artifact: what was published, and the hashes to check it against.

The manifest is canonical JSON; its signature (Ed25519 over exactly those bytes) is published beside
it. A client verifies the signature with a public key it already trusts, then the part hashes,
before decrypting anything.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, Field, ValidationError

from azaion_pipeline.lib.evaluation.scoring import EvaluationSummary
from azaion_pipeline.lib.files import write_atomic
from azaion_pipeline.lib.parts import SplitResult

FORMAT_VERSION = 1


class ManifestError(ValueError):
    """The manifest or its signature is not what the publisher signed."""


class PartDigest(BaseModel):
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ArtifactManifest(BaseModel):
    format_version: int = FORMAT_VERSION
    model_name: str
    version: str
    model_version: str
    dataset_version: str | None = None
    format: str
    file_name: str
    metrics: dict[str, float] = {}
    # the export's test-split evaluation, per-class thresholds included (absent before gate v2)
    evaluation: EvaluationSummary | None = None
    plaintext: PartDigest
    encrypted_size: int = Field(ge=32)
    small: PartDigest
    big: PartDigest
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())

    @classmethod
    def describe(cls, split: SplitResult, **fields) -> ArtifactManifest:
        digests = {
            name: PartDigest(size=digest.size, sha256=digest.sha256)
            for name, digest in (
                ("plaintext", split.plaintext),
                ("small", split.small),
                ("big", split.big),
            )
        }
        return cls(**digests, encrypted_size=split.encrypted_size, **fields)

    def canonical_bytes(self) -> bytes:
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def generate_signing_key() -> tuple[str, str]:
    """A new key pair as single-line base64 strings (private, public), fit for environment variables."""
    private = Ed25519PrivateKey.generate()
    return _b64(private.private_bytes_raw()), _b64(private.public_key().public_bytes_raw())


def _load_key(text: str, kind: type, pem_loader, raw_loader, what: str):
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = pem_loader(text.encode())
            if not isinstance(key, kind):
                raise ManifestError(f"the {what} is a PEM key but not an Ed25519 one")
            return key
        return raw_loader(base64.b64decode(text, validate=True))
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ManifestError):
            raise
        raise ManifestError(f"the {what} is not a valid Ed25519 key") from exc


def load_private_key(text: str) -> Ed25519PrivateKey:
    """Accepts PEM (PKCS8) or base64 of the raw 32 bytes."""
    return _load_key(
        text,
        Ed25519PrivateKey,
        lambda data: serialization.load_pem_private_key(data, password=None),
        Ed25519PrivateKey.from_private_bytes,
        "signing key (AZAION_SIGNING_KEY)",
    )


def load_public_key(text: str) -> Ed25519PublicKey:
    return _load_key(
        text,
        Ed25519PublicKey,
        serialization.load_pem_public_key,
        Ed25519PublicKey.from_public_bytes,
        "signing public key",
    )


def public_key_text(private_key_text: str) -> str:
    return _b64(load_private_key(private_key_text).public_key().public_bytes_raw())


def sign_manifest(manifest: ArtifactManifest, private_key_text: str) -> tuple[bytes, bytes]:
    """(manifest bytes, raw 64-byte signature of exactly those bytes)."""
    data = manifest.canonical_bytes()
    return data, load_private_key(private_key_text).sign(data)


def verify_manifest(data: bytes, signature: bytes, public_key: str) -> ArtifactManifest:
    try:
        load_public_key(public_key).verify(signature, data)
    except InvalidSignature as exc:
        raise ManifestError(
            "manifest signature does not verify: the manifest or its signature was altered"
        ) from exc
    try:
        return ArtifactManifest.model_validate_json(data)
    except ValidationError as exc:
        raise ManifestError(f"signed manifest does not validate: {exc}") from exc


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_name(f"{model_path.name}.json")


def write_sidecar(model_path: Path, manifest: ArtifactManifest) -> Path:
    """``<model>.json`` beside a fetched model: what edge clients need besides the weights.

    ``class_thresholds`` maps class id to the F1-optimal confidence measured on the export;
    a class without an entry has no measured optimum and keeps the client's default.
    """
    evaluation = manifest.evaluation
    card = {
        "model_name": manifest.model_name,
        "version": manifest.version,
        "model_version": manifest.model_version,
        "dataset_version": manifest.dataset_version,
        "file_name": manifest.file_name,
        "sha256": manifest.plaintext.sha256,
        "class_thresholds": {
            str(class_id): threshold.conf
            for class_id, threshold in sorted((evaluation.thresholds if evaluation else {}).items())
        },
        "evaluation": evaluation.model_dump(mode="json") if evaluation else None,
    }
    target = sidecar_path(model_path)
    write_atomic(target, json.dumps(card, indent=1).encode())
    return target
