"""Train/valid/test assignment that never leaks a video and never moves an annotation.

- Frames of one ``originalMediaName`` (provenance, when known) share a split.
- Near-duplicates (pHash within ``max_distance`` bits) share a split.
- A group's first member draws its split from a stable hash of the group's key (the media
  name, else the annotation's own name); later members follow it.
- A split, once assigned, is stored in the catalogue and never changes. A newcomer that is a
  near-twin of images already in two different splits is left out of training (split
  ``excluded``, with the names in its reason); nobody is moved.
- Provenance that arrives after a frame got its split (the frame came first without it) can
  reveal one video across two splits. Nobody moves then either: the frames outside the
  split its first-assigned frame has are left out of training (``settle_media``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from azaion_pipeline.lib.dataset.catalogue import EXCLUDED, Catalogue, Newcomer
from azaion_pipeline.lib.dataset.near_duplicates import neighbours
from azaion_pipeline.lib.layout import SPLITS


@dataclass(frozen=True)
class SplitShares:
    train: int = 70
    valid: int = 20

    def __post_init__(self):
        if self.train <= 0 or self.valid <= 0 or self.train + self.valid >= 100:
            raise ValueError(f"split shares must each be > 0 with train + valid < 100: {self}")

    @property
    def test(self) -> int:
        return 100 - self.train - self.valid


def split_of(group: str, shares: SplitShares) -> str:
    """``train``, ``valid`` or ``test`` for a group key, fixed by its hash."""
    bucket = int.from_bytes(hashlib.sha256(group.encode()).digest()[:8], "big") % 100
    if bucket < shares.train:
        return "train"
    return "valid" if bucket < shares.train + shares.valid else "test"


@dataclass
class SplitReport:
    assigned: dict[str, str] = field(default_factory=dict)  # name -> split, this run
    excluded: dict[str, str] = field(default_factory=dict)  # name -> why, this run


def assign_splits(
    catalogue: Catalogue,
    newcomers: list[Newcomer],
    shares: SplitShares,
    max_distance: int,
    run: int,
) -> SplitReport:
    """Give each newcomer without a split one; ``newcomers`` in arrival order."""
    report = SplitReport()
    todo = [a for a in newcomers if catalogue.split_of(a.name) is None]
    if not todo:
        return report
    rows, hashes = catalogue.perceptual_hashes()
    near = neighbours([a.phash for a in todo], hashes, max_distance)
    for annotation, twins in zip(todo, near, strict=True):
        reasons: dict[str, set[str]] = {}
        if annotation.media_name:
            for split in catalogue.splits_of_media(annotation.media_name):
                reasons.setdefault(split, set()).add(f"media {annotation.media_name}")
        # Read from the catalogue, so newcomers assigned earlier in this loop count too.
        for name, split in catalogue.names_and_splits(_others(rows[twins], annotation.row)):
            if split in SPLITS:
                reasons.setdefault(split, set()).add(name)
        reasons.pop(EXCLUDED, None)
        if len(reasons) > 1:
            split = EXCLUDED
            reason = "near-twin of " + "; ".join(
                f"{s}: {', '.join(sorted(reasons[s])[:3])}" for s in sorted(reasons)
            )
            report.excluded[annotation.name] = reason
        elif reasons:
            [(split, why)] = reasons.items()
            reason = f"follows {', '.join(sorted(why)[:3])}"
        else:
            split = split_of(annotation.media_name or annotation.name, shares)
            reason = "hash of " + ("media name" if annotation.media_name else "name")
        catalogue.assign_split(annotation.name, split, reason, run)
        report.assigned[annotation.name] = split
    return report


def settle_media(catalogue: Catalogue, media_names: set[str]) -> dict[str, str]:
    """Exclude frames that sit outside their media's first split; name -> why."""
    excluded = {}
    for media in sorted(media_names):
        members = [
            (name, split) for name, split in catalogue.media_members(media) if split in SPLITS
        ]
        if len({split for _, split in members}) < 2:
            continue
        first = members[0][1]
        for name, split in members:
            if split != first:
                reason = (
                    f"frame of media {media}, whose frames are in {first} (its provenance "
                    f"came after its split, {split}, was given)"
                )
                catalogue.exclude(name, reason)
                excluded[name] = reason
    return excluded


def cross_split_twins(
    catalogue: Catalogue, since_run: int, max_distance: int, limit: int = 10
) -> tuple[int, list[tuple[str, str]]]:
    """Near-duplicate pairs with one image in train and the other in valid or test.

    Only pairs involving an annotation assigned after ``since_run`` are searched: older
    pairs were checked when they were new, and nobody moves. Returns (count, examples).
    """
    recent = [r for r in catalogue.assigned_hashes_since(since_run) if r[3] in SPLITS]
    if not recent:
        return 0, []
    recent_names = {name for _, name, _, _ in recent}
    rows, hashes = catalogue.perceptual_hashes()
    count, examples = 0, []
    near = neighbours([phash for _, _, phash, _ in recent], hashes, max_distance)
    for (row, name, _, split), twins in zip(recent, near, strict=True):
        for other, other_split in catalogue.names_and_splits(_others(rows[twins], row)):
            if (split == "train") == (other_split == "train") or other_split not in SPLITS:
                continue
            if other in recent_names and other < name:
                continue  # a pair of two recent ones is met from both sides: count it once
            count += 1
            if len(examples) < limit:
                examples.append((name, other))
    return count, examples


def _others(rows: np.ndarray, own: int) -> np.ndarray:
    return rows[rows != own]
