"""Small JSON manifests at content-addressed paths: what one asset hands the next."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def write_manifest(folder: Path, kind: str, payload: Any) -> Path:
    """Write ``payload`` to ``folder/{kind}-{hash}.json``; identical content reuses the file."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = folder / f"{kind}-{digest}.json"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text)
        os.replace(partial, path)  # readers never see a half-written manifest
    return path


def read_manifest(path: Path | str) -> Any:
    return json.loads(Path(path).read_text())
