"""One ingest run: bring the catalogue up to date with data/ (and data-seed/) by delta.

1. Find the names to look at. A root the stream feeds: the names in the batches sealed since
   the last run (``batches/index`` read from the position the catalogue keeps), so a run
   costs the batch, whatever the root holds. A folder-fed root, a first run, or once every
   ``rescan`` (out-of-band edits): list the folders (symlinks and dot-files are seen from
   the listing).
2. Compare each pair's stat keys with the catalogue's: unchanged pairs cost one stat each.
3. Validate only new and changed pairs, on threads (decoding and hashing release the GIL).
4. Resolve duplicates in favour of what is trusted and first, quarantine what fails.
5. Forget what left, record what came, give newcomers their split.

Changes commit in batches: a run killed at any point leaves a consistent catalogue, and
the next run redoes only what was not committed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from azaion_pipeline.lib.dataset.annotations import (
    IMAGE_SUFFIXES,
    LABEL_SUFFIX,
    Candidate,
    Checked,
    Reason,
    Rejection,
    ValidationRules,
    stat_key,
    validate_candidate,
)
from azaion_pipeline.lib.dataset.catalogue import NEAR_DISTANCE, Accepted, Catalogue
from azaion_pipeline.lib.dataset.near_duplicates import DEFAULT_MAX_DISTANCE
from azaion_pipeline.lib.dataset.provenance import read_image_extension, read_media_name
from azaion_pipeline.lib.dataset.quarantine import quarantine
from azaion_pipeline.lib.dataset.split import (
    SplitReport,
    SplitShares,
    assign_splits,
    settle_media,
)
from azaion_pipeline.lib.intake.batches import BatchLog
from azaion_pipeline.lib.layout import IMAGES, LABELS, AzaionLayout
from azaion_pipeline.lib.parallel import map_in_threads
from azaion_pipeline.lib.records import Record

DATA, SEED = "data", "data-seed"
COMMIT_EVERY = 500
DEFAULT_RESCAN = timedelta(hours=24)
# meta keys: how far batches/index was applied (bytes), when the folders were last listed.
BATCHES_READ = "batches_read"
LISTED_AT = "listed_at"
# meta key: the rules and folders of the last listing; other ones must see every pair again.
LISTED_SCOPE = "listed_scope"


class AnnotationSet(Record):
    """raw_annotations' output: the catalogue after this run, and what the run did."""

    version: str  # hash over every accepted name and content
    catalogue: Path
    valid: int
    accepted_now: int
    updated_now: int
    removed_now: int
    validated_now: int
    listed: bool  # the folders were listed (else only the names sealed batches named)
    quarantined: int
    duplicates: int
    quarantined_by_reason: dict[str, int]
    quarantine_failures: int
    reasons_file: Path
    boxes_per_class: dict[int, int]
    excluded: int  # near-twins of two splits, left out of training
    excluded_examples: dict[str, str]
    near_duplicate_distance: int  # the pHash distance splits were grouped at


@dataclass
class IngestReport:
    run: int
    total: int  # accepted annotations after this run
    validated_now: int
    listed: bool  # the folders were listed (else only what sealed batches named)
    accepted: list[str] = field(default_factory=list)  # new names
    updated: list[str] = field(default_factory=list)  # known names, new content
    removed: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    quarantine_failures: list[str] = field(default_factory=list)
    splits: SplitReport = field(default_factory=SplitReport)

    @property
    def duplicates(self) -> int:
        return sum(r.reason.startswith("duplicate_of:") for r in self.rejected)


def _in_flight(name: str) -> bool:
    """A writer's temporary file (``.{name}.{pid}.tmp``): it will be renamed, leave it be."""
    return name.startswith(".") and name.endswith(".tmp")


def list_candidates(folder: Path, origin: str) -> tuple[dict[str, Candidate], list[Rejection]]:
    """Group ``folder/images`` and ``folder/labels`` by stem, from the listing alone."""
    by_name: dict[str, Candidate] = {}
    rejections = []

    def entries(sub: str) -> list[os.DirEntry]:
        try:
            with os.scandir(folder / sub) as listing:
                found = [
                    e
                    for e in listing
                    if not _in_flight(e.name)
                    and (e.is_symlink() or e.is_file(follow_symlinks=False))
                ]
        except FileNotFoundError:
            return []
        return sorted(found, key=lambda e: e.name)

    for entry in entries(IMAGES):
        stem = os.path.splitext(entry.name)[0]
        candidate = by_name.setdefault(stem, Candidate(stem, origin))
        if candidate.image is None:
            candidate.image = entry.path
        else:
            candidate.conflicts.append(entry.path)
    for entry in entries(LABELS):
        stem, suffix = os.path.splitext(entry.name)
        if suffix != LABEL_SUFFIX:
            rejections.append(
                Rejection(
                    entry.name,
                    Reason.LABEL_SYNTAX,
                    "label files end in .txt",
                    [Path(entry.path)],
                    origin,
                )
            )
            continue
        by_name.setdefault(stem, Candidate(stem, origin)).label = entry.path
    return by_name, rejections + _conflicts(by_name.values())


def named_candidates(
    folder: Path, origin: str, names: Iterable[str]
) -> tuple[dict[str, Candidate], list[Rejection]]:
    """``list_candidates`` for these names only, found by probing their paths: what a
    sealed batch named costs a few stats each, however many pairs the folder holds."""
    by_name: dict[str, Candidate] = {}
    for name in names:
        if not name or name in (".", "..") or os.sep in name:
            continue  # never a file in the folder: a probe would look outside it
        candidate = Candidate(name, origin)
        extension = read_image_extension(folder, name)
        for suffix in dict.fromkeys([*IMAGE_SUFFIXES, *([f".{extension}"] if extension else [])]):
            path = os.path.join(folder, IMAGES, name + suffix)
            if os.path.lexists(path):
                if candidate.image is None:
                    candidate.image = path
                else:
                    candidate.conflicts.append(path)
        label = os.path.join(folder, LABELS, name + LABEL_SUFFIX)
        if os.path.lexists(label):
            candidate.label = label
        if candidate.image or candidate.label:
            by_name[name] = candidate
    return by_name, _conflicts(by_name.values())


def _conflicts(candidates: Iterable[Candidate]) -> list[Rejection]:
    return [
        Rejection(
            candidate.name,
            Reason.NAME_CONFLICT,
            f"{os.path.basename(extra)} shares its name with {os.path.basename(candidate.image)}",
            [Path(extra)],
            candidate.origin,
        )
        for candidate in candidates
        for extra in candidate.conflicts
    ]


def _batched_names(
    catalogue: Catalogue, batches: BatchLog, scope: str, rescan: timedelta, now: datetime
) -> tuple[list[str] | None, int]:
    """The names the batches sealed since the last run named, and the index position after
    them; None for names when this run must list the folders instead."""
    read = int(catalogue.get_meta(BATCHES_READ, "-1"))
    listed_at = catalogue.get_meta(LISTED_AT)
    try:
        index_bytes = batches.index.stat().st_size
    except FileNotFoundError:
        return None, 0  # a folder-fed root
    must_list = (
        not 0 <= read <= index_bytes  # never read, or the index was replaced
        or listed_at is None
        or catalogue.get_meta(LISTED_SCOPE) != scope
        or now - datetime.fromisoformat(listed_at) >= rescan
    )
    ids, position = batches.sealed_since(0 if must_list else read)
    if must_list:
        return None, position
    names: dict[str, None] = {}
    try:
        for batch_id in ids:
            names.update(dict.fromkeys(batches.names(batch_id)))
    except FileNotFoundError:  # sealed by a consumer that did not name its annotations yet
        return None, position
    return list(names), position


def _unchanged(candidate: Candidate, known: tuple | None, rules_key: str) -> bool:
    if known is None or candidate.image is None or candidate.label is None:
        return False
    image, label, image_stat, label_stat, rules = known
    if (candidate.image, candidate.label, rules) != (image, label, rules_key):
        return False
    try:
        return (stat_key(candidate.image), stat_key(candidate.label)) == (image_stat, label_stat)
    except OSError:
        return False


def _duplicate_detail(kept: Accepted | Checked, newcomer: Checked) -> str:
    labels = (
        "the labels are identical"
        if kept.label_sha256 == newcomer.label_sha256
        else "the labels differ"
    )
    return f"image is byte-identical to {kept.name} (kept, in {kept.origin}); {labels}"


def ingest(
    layout: AzaionLayout,
    catalogue: Catalogue,
    rules: ValidationRules,
    include_seed: bool = False,
    shares: SplitShares | None = None,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    workers: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
    rescan: timedelta = DEFAULT_RESCAN,
) -> IngestReport:
    run = catalogue.next_run()
    folders = {DATA: layout.data, **({SEED: layout.data_seed} if include_seed else {})}
    candidates: dict[str, Candidate] = {}
    rejected: list[Rejection] = []
    now = datetime.now(UTC)
    # New rules or another set of folders than the last listing's: every pair is looked
    # at again, by a listing. The index position is taken before the folders are looked
    # at: a batch sealed while this run lists is applied again next run, never skipped.
    scope = f"{rules.key}:{','.join(folders)}"
    names, batches_read = _batched_names(catalogue, BatchLog(layout), scope, rescan, now)
    if names is None:
        listed = {origin: list_candidates(folder, origin) for origin, folder in folders.items()}
        known = catalogue.stat_keys()
    else:
        listed = {o: named_candidates(f, o, names) for o, f in folders.items()}
        known = catalogue.stat_keys(names)
    seed_prefix = str(layout.data_seed) + os.sep
    known_origin = {name: _origin_of(image, seed_prefix) for name, (image, *_) in known.items()}
    for origin in folders:
        found, bad = listed[origin]
        rejected.extend(bad)
        for name, candidate in found.items():
            other = candidates.get(name)
            if other is None:
                candidates[name] = candidate
                continue
            # One name in data/ and data-seed/: the catalogued one stays, else data/.
            keep, drop = (other, candidate)
            if known_origin.get(name) == candidate.origin:
                keep, drop = candidate, other
            candidates[name] = keep
            rejected.append(
                Rejection(
                    name,
                    Reason.NAME_CONFLICT,
                    f"name already used by the pair in {keep.origin}; this one is in {drop.origin}",
                    drop.files(),
                    drop.origin,
                )
            )

    rules_key = rules.key
    todo = [c for name, c in candidates.items() if not _unchanged(c, known.get(name), rules_key)]
    gone = sorted(known.keys() - candidates.keys())
    report = IngestReport(
        run=run, total=0, validated_now=len(todo), listed=names is None, removed=gone
    )
    with catalogue.transaction():
        for name in gone:
            catalogue.remove(name)

    failures = quarantine(layout.corrupted, rejected).failed
    # Trusted and first: accepted earlier, then data/ over data-seed/, then arrival, then name.
    # Chunks go in that order and each commits before the next: a later chunk's duplicate
    # meets the earlier one in the catalogue, and a killed run keeps every finished chunk.
    todo.sort(key=lambda c: (c.name not in known, c.origin != DATA, _arrival(c), c.name))
    check = partial(validate_candidate, rules=rules)
    for start in range(0, len(todo), COMMIT_EVERY):
        chunk = todo[start : start + COMMIT_EVERY]
        outcomes = map_in_threads(check, chunk, workers)
        accepted, chunk_rejected = _resolve(catalogue, outcomes, known.keys(), report)
        failures += quarantine(layout.corrupted, chunk_rejected).failed
        rejected.extend(chunk_rejected)
        # Invalid now but accepted before (an edit broke it): it leaves the catalogue.
        broken = [r.name for r in chunk_rejected if r.name in known and r.name in candidates]
        with catalogue.transaction():
            for name in broken:
                catalogue.remove(name)
            for item in accepted:
                catalogue.put(_accept(item, run, folders[item.origin], rules_key))
        if on_progress:
            on_progress(start + len(chunk), len(todo))
    report.rejected = rejected
    report.quarantine_failures = failures

    with catalogue.transaction():
        report.splits = assign_splits(
            catalogue, catalogue.unassigned(), shares or SplitShares(), max_distance, run
        )
        report.splits.excluded |= settle_media(catalogue, catalogue.media_changed())
        catalogue.mark_assigned(run)
        catalogue.set_meta(NEAR_DISTANCE, str(max_distance))
        catalogue.set_meta(BATCHES_READ, str(batches_read))
        if names is None:
            catalogue.set_meta(LISTED_AT, now.isoformat())
            catalogue.set_meta(LISTED_SCOPE, scope)
    report.total = catalogue.count()
    return report


def _arrival(candidate: Candidate) -> int:
    """When the image landed here: a rename or link into the folder sets its ctime."""
    try:
        return os.stat(candidate.image).st_ctime_ns if candidate.image else 0
    except OSError:
        return 0


def _resolve(
    catalogue: Catalogue, outcomes: list, known: Collection[str], report: IngestReport
) -> tuple[list[Checked], list[Rejection]]:
    """Split validation outcomes into pairs to accept and rejections (byte-identical
    duplicates of an accepted or earlier pair included); ``outcomes`` in trust order."""
    accepted, rejected = [], []
    first_of_image: dict[str, Checked] = {}
    # An incumbent failing validation in this chunk is leaving: it keeps nobody out.
    leaving = {o.name for o in outcomes if isinstance(o, Rejection)}
    for item in outcomes:
        if isinstance(item, Rejection):
            rejected.append(item)
            continue
        holder = catalogue.holder_of_image(item.image_sha256)
        kept = (
            holder if holder and holder.name != item.name and holder.name not in leaving else None
        )
        kept = kept or first_of_image.get(item.image_sha256)
        if kept is not None:
            rejected.append(
                Rejection(
                    item.name,
                    Reason.duplicate_of(kept.name),
                    _duplicate_detail(kept, item),
                    [Path(item.image), Path(item.label)],
                    item.origin,
                )
            )
            continue
        first_of_image[item.image_sha256] = item
        accepted.append(item)
        (report.updated if item.name in known else report.accepted).append(item.name)
    return accepted, rejected


def _accept(item: Checked, run: int, folder: Path, rules_key: str) -> Accepted:
    return Accepted(
        **vars(item),
        media_name=read_media_name(folder, item.name),
        accepted_run=run,
        rules=rules_key,
    )


def _origin_of(image: str, seed_prefix: str) -> str:
    return SEED if image.startswith(seed_prefix) else DATA
