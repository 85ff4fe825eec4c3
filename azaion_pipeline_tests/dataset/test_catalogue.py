"""The catalogue: a run with nothing new opens no file (a stream-fed one lists no folder and
touches only what its batches name), and a SIGKILL loses nothing accepted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from azaion_pipeline.lib.dataset.augment import AugmentSettings, augment_pending, store_dir
from azaion_pipeline.lib.dataset.catalogue import Catalogue, list_line
from azaion_pipeline.lib.intake.batches import BatchLog, BatchTally
from azaion_pipeline.lib.intake.messages import AnnotationBulkMessage, AnnotationStatus
from azaion_pipeline.lib.intake.store import Effect
from azaion_pipeline.lib.layout import SPLITS
from azaion_pipeline.lib.settings import PROJECT_ROOT

OPENED: list[str] = []
LISTED: list[str] = []
COUNTING = [False]


def _count_opens(event: str, args: tuple) -> None:
    if not COUNTING[0] or not args or not isinstance(args[0], str | bytes | os.PathLike):
        return
    if event == "open":
        OPENED.append(os.fsdecode(args[0]))
    elif event in ("os.scandir", "os.listdir"):
        LISTED.append(os.fsdecode(args[0]))


sys.addaudithook(_count_opens)  # audit hooks cannot be removed: it counts only when asked


@contextmanager
def counting():
    """Record the files Python opens and the folders it lists, under the block."""
    OPENED.clear()
    LISTED.clear()
    COUNTING[0] = True
    try:
        yield
    finally:
        COUNTING[0] = False


def seal(layout, names: list[str], status=AnnotationStatus.VALIDATED) -> None:
    """A sealed batch naming ``names``, written by the consumer's own tally and log."""
    log = BatchLog(layout)
    log.prepare()
    tally = BatchTally()
    message = AnnotationBulkMessage(names=tuple(names), status=status)
    tally.count(len(log.sealed_since(0)[0]), message, Effect.MOVED, False)
    log.seal(tally.manifest("annotations", "test"), tally.names)


def test_a_run_with_nothing_new_reads_no_annotation_file(harness, layout):
    harness.add_samples(25, seed=1, with_defects=True)
    settings = AugmentSettings(variants=1)
    first = harness.build(settings)
    assert first[0].validated_now > 0 and first[1].augmented > 0

    with counting():
        report, augmented, built = harness.build(settings)
    under_root = [p for p in OPENED if Path(p).is_relative_to(layout.root)]
    # SQLite opens its files natively; Python opened nothing under the root.
    assert under_root == []
    assert report.validated_now == 0 and not report.rejected and not report.accepted
    assert augmented.augmented == 0
    assert built.reused and built.id == first[2].id


def test_a_stream_fed_run_reads_only_the_names_its_new_batches_name(harness, layout):
    """No listing: a run with no new batch opens only the batch index; a batch of +1 / -1
    touches exactly that name and gives the version with exactly that list change."""
    first_samples = harness.add_samples(12, seed=3)
    seal(layout, first_samples.valid)
    settings = AugmentSettings(variants=0)
    first = harness.build(settings)
    assert first[0].listed  # no run read the batches yet: the folders are listed once

    with counting():
        report, augmented, built = harness.build(settings)
    assert not report.listed and report.validated_now == 0 and augmented.augmented == 0
    assert built.reused and built.id == first[2].id
    under_root = [p for p in OPENED if Path(p).is_relative_to(layout.root)]
    assert under_root == [str(BatchLog(layout).index)]
    assert [p for p in LISTED if Path(p).is_relative_to(layout.root)] == []

    [added] = harness.add_samples(1, seed=4).valid
    seal(layout, [added])
    with counting():
        report, augmented, built = harness.build(settings)
    assert not report.listed
    assert (report.accepted, report.validated_now, augmented.augmented) == ([added], 1, 1)
    assert [p for p in LISTED if Path(p).is_relative_to(layout.root)] == []
    annotation_files = [p for p in OPENED if Path(p).is_relative_to(layout.data)]
    assert annotation_files and all(added in p for p in annotation_files)
    with Catalogue.of(layout) as catalogue:
        split = catalogue.split_of(added)
    before = _lists(first[2].directory)
    after = _lists(built.directory)
    assert not built.reused and built.id != first[2].id
    assert {s: after[s] - before[s] for s in after} == {
        s: ({_image_of(layout, settings, added)} if s == split else set()) for s in after
    }
    assert all(before[s] <= after[s] for s in after)

    gone = first_samples.valid[0]
    gone_line = _image_of(layout, settings, gone)
    (layout.data / "images" / f"{gone}.jpg").unlink()
    (layout.data / "labels" / f"{gone}.txt").unlink()
    seal(layout, [gone], AnnotationStatus.DELETED)
    report, _, removed = harness.build(settings)
    assert report.removed == [gone] and report.validated_now == 0
    assert sum(removed.images.values()) == sum(built.images.values()) - 1
    assert gone_line in set().union(*_lists(built.directory).values())
    assert gone_line not in set().union(*_lists(removed.directory).values())


def test_an_edit_beside_the_stream_waits_for_the_rescan(harness, layout):
    """Out-of-band edits are not in any batch: the periodic listing catches them, as does
    the first run with other folders or rules."""
    samples = harness.add_samples(8, seed=5)
    seal(layout, samples.valid)
    harness.build(AugmentSettings(variants=0))
    label = layout.data / "labels" / f"{samples.valid[1]}.txt"
    label.write_text(label.read_text() + label.read_text().splitlines()[0] + "\n")

    catalogue, report = harness.ingest()
    catalogue.close()
    assert not report.listed and report.validated_now == 0
    catalogue, report = harness.ingest(rescan=timedelta(0))
    catalogue.close()
    assert report.listed and report.updated == [samples.valid[1]]

    # Other folders (or rules) than the last listing's: every pair is looked at again.
    for include_seed, listed in ((True, True), (True, False)):
        catalogue, report = harness.ingest(include_seed=include_seed)
        catalogue.close()
        assert report.listed == listed


def _lists(directory: Path) -> dict[str, set[str]]:
    return {split: set((directory / f"{split}.txt").read_text().split()) for split in SPLITS}


def _image_of(layout, settings: AugmentSettings, name: str) -> str:
    """``name``'s original's line in its split's list."""
    with Catalogue.of(layout) as catalogue:
        split = catalogue.split_of(name)
        [output] = [o for o in catalogue.split_entries(settings.key, split) if o.source == name]
    return list_line(split, output.image)


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from azaion_pipeline.lib.classes import ClassCatalog
    from azaion_pipeline.lib.dataset import ingest as ingest_module
    from azaion_pipeline.lib.dataset.annotations import ValidationRules
    from azaion_pipeline.lib.dataset.augment import AugmentSettings, augment_pending
    from azaion_pipeline.lib.dataset.catalogue import Catalogue
    from azaion_pipeline.lib.layout import AzaionLayout

    layout = AzaionLayout.under(sys.argv[1])
    step = sys.argv[2]
    classes = ClassCatalog.load(sys.argv[3])
    ingest_module.COMMIT_EVERY = 10

    def die_after_first_chunk(done, total):
        if done >= 10:
            os.kill(os.getpid(), signal.SIGKILL)

    with Catalogue.of(layout) as catalogue:
        if step == "ingest":
            ingest_module.ingest(
                layout, catalogue, ValidationRules(classes.valid_ids()), workers=1,
                on_progress=die_after_first_chunk,
            )
        else:
            augment_pending(
                catalogue, layout.processed, AugmentSettings(variants=1), 1,
                on_progress=die_after_first_chunk, chunk=10,
            )
    """
)


def killed(harness, step: str) -> int:
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLER,
            str(harness.layout.root),
            step,
            str(PROJECT_ROOT / "configs" / "classes.json"),
        ],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
    )
    return process.returncode


def test_the_catalogue_survives_a_sigkill_mid_run(harness, layout):
    report = harness.add_samples(30, seed=2)  # 27 in data/
    assert killed(harness, "ingest") == -signal.SIGKILL
    with Catalogue.of(layout) as catalogue:
        survived = {a.name: a.accepted_run for a in catalogue.iter_annotations()}
    assert len(survived) == 10  # the first committed chunk, nothing half-written

    catalogue, again = harness.ingest()
    with catalogue:
        accepted = {a.name: a.accepted_run for a in catalogue.iter_annotations()}
        assert set(accepted) == set(report.valid)
        assert all(accepted[name] == run for name, run in survived.items())  # kept as it was
        assert again.validated_now == len(report.valid) - 10
        assert not catalogue.unassigned()  # every accepted one has its split

    assert killed(harness, "augment") == -signal.SIGKILL
    settings = AugmentSettings(variants=1)
    with Catalogue.of(layout) as catalogue:
        done = {o[0] for o in catalogue.output_files(settings.key)}
        assert len(done) == 10 * 2
        resumed = augment_pending(catalogue, layout.processed, settings, 1)
        assert resumed.augmented == len(report.valid) - 10
        outputs = list(catalogue.output_files(settings.key))
    store = store_dir(layout.processed, settings)
    assert len(outputs) == len(report.valid) * 2
    assert all(
        (store / "images" / i).exists() and (store / "labels" / t).exists() for i, t in outputs
    )
