"""The champion: the last model that passed the gate and was published.

``models/azaion.pt`` is Azaion's "current best" file; ``models/champion.json`` records
where it came from. Only publishing promotes; training only reads.
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


def champion_record(layout: AzaionLayout) -> Path:
    return layout.models / "champion.json"


def read_champion(layout: AzaionLayout) -> Champion | None:
    record = champion_record(layout)
    if not record.exists():
        return None
    return Champion.model_validate_json(record.read_text())


def promote_champion(
    layout: AzaionLayout,
    weights: Path,
    weights_sha256: str,
    model_version: str,
    dataset_version: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> Champion:
    """Copy ``weights`` to models/azaion.pt and record it; both writes are atomic renames."""
    layout.models.mkdir(parents=True, exist_ok=True)
    target = layout.models / "azaion.pt"
    staging = target.with_suffix(".pt.tmp")
    shutil.copyfile(weights, staging)
    os.replace(staging, target)
    champion = Champion(
        weights=target,
        weights_sha256=weights_sha256,
        model_version=model_version,
        dataset_version=dataset_version,
        metrics={k: float(v) for k, v in (metrics or {}).items()},
        promoted_at=datetime.now(UTC).isoformat(),
    )
    record = champion_record(layout)
    staging_record = record.with_suffix(".json.tmp")
    staging_record.write_text(json.dumps(champion.model_dump(mode="json"), indent=2))
    os.replace(staging_record, record)
    return champion
