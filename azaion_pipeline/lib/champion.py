"""The champion: the last model that passed the gate and was published.

``models/azaion.pt`` is Azaion's "current best" file and ``models/azaion.onnx`` the export
edge devices run (what the gate scores challengers against); ``models/champion.json``
records where they came from. Only publishing promotes; training only reads.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from azaion_pipeline.lib.layout import AzaionLayout


class Champion(BaseModel):
    weights: Path
    weights_sha256: str
    model_version: str
    dataset_version: str | None = None
    metrics: dict[str, float] = {}
    promoted_at: str
    # absent in records written before the gate scored exports
    onnx: Path | None = None
    onnx_sha256: str | None = None


def champion_record(layout: AzaionLayout) -> Path:
    return layout.models / "champion.json"


def read_champion(layout: AzaionLayout) -> Champion | None:
    record = champion_record(layout)
    if not record.exists():
        return None
    return Champion.model_validate_json(record.read_text())


def _install(source: Path, target: Path) -> Path:
    staging = target.with_name(f"{target.name}.tmp")
    shutil.copyfile(source, staging)
    os.replace(staging, target)
    return target


def promote_champion(
    layout: AzaionLayout,
    weights: Path,
    weights_sha256: str,
    model_version: str,
    dataset_version: str | None = None,
    metrics: dict[str, Any] | None = None,
    onnx: Path | None = None,
    onnx_sha256: str | None = None,
) -> Champion:
    """Copy ``weights`` to models/azaion.pt (and ``onnx`` to models/azaion.onnx) and record
    them; every write is an atomic rename, the record last."""
    layout.models.mkdir(parents=True, exist_ok=True)
    target = _install(weights, layout.models / "azaion.pt")
    champion_onnx = _install(onnx, layout.models / "azaion.onnx") if onnx else None
    champion = Champion(
        weights=target,
        weights_sha256=weights_sha256,
        model_version=model_version,
        dataset_version=dataset_version,
        metrics={k: float(v) for k, v in (metrics or {}).items()},
        promoted_at=datetime.now(UTC).isoformat(),
        onnx=champion_onnx,
        onnx_sha256=onnx_sha256 if onnx else None,
    )
    record = champion_record(layout)
    staging_record = record.with_suffix(".json.tmp")
    staging_record.write_text(json.dumps(champion.model_dump(mode="json"), indent=2))
    os.replace(staging_record, record)
    return champion
