"""Quarantine: move a rejected pair to ``data-corrupted/`` and say why. Never delete.

Each rejection appends one JSON line to ``data-corrupted/reasons.jsonl``:
``{"name", "reason", "detail", "detected_at", "origin", "files"}``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from azaion_pipeline.lib.dataset.annotations import Rejection

REASONS_FILE = "reasons.jsonl"


@dataclass
class QuarantineOutcome:
    moved: list[Path]
    # Files that could not be moved (permissions, vanished): reported, never fatal.
    failed: list[str]


def _free_target(target: Path) -> Path:
    """``target``, or ``target.1``, ``target.2`` ... when an earlier quarantine took the name."""
    candidate, counter = target, 0
    while candidate.exists() or candidate.is_symlink():
        counter += 1
        candidate = target.with_name(f"{target.name}.{counter}")
    return candidate


def quarantine(corrupted: Path, rejections: list[Rejection]) -> QuarantineOutcome:
    """Move each rejection's files under ``corrupted/{images,labels}`` and log its reason."""
    outcome = QuarantineOutcome(moved=[], failed=[])
    if not rejections:
        return outcome
    corrupted.mkdir(parents=True, exist_ok=True)
    detected_at = datetime.now(UTC).isoformat(timespec="seconds")
    with open(corrupted / REASONS_FILE, "a", encoding="utf-8") as reasons:
        for rejection in rejections:
            moved = []
            for source in rejection.files:
                # Keep the images/ or labels/ sub-folder so a pair can be put back by hand.
                target = _free_target(corrupted / source.parent.name / source.name)
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(source, target)
                    moved.append(target)
                except OSError as exc:
                    outcome.failed.append(f"{source}: {exc}")
            outcome.moved.extend(moved)
            line = {
                "name": rejection.name,
                "reason": str(rejection.reason),
                "detail": rejection.detail,
                "detected_at": detected_at,
                "origin": rejection.origin,
                "files": [str(p) for p in moved],
            }
            reasons.write(json.dumps(line, ensure_ascii=True) + "\n")
        reasons.flush()
        os.fsync(reasons.fileno())
    return outcome


def read_reasons(corrupted: Path) -> list[dict]:
    path = corrupted / REASONS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
