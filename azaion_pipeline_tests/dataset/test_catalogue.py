"""The catalogue: a run with nothing new opens no file, and a SIGKILL loses nothing accepted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from azaion_pipeline.lib.dataset.augment import AugmentSettings, augment_pending, store_dir
from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.versions import build_version
from azaion_pipeline.lib.settings import PROJECT_ROOT

OPENED: list[str] = []
COUNTING = [False]


def _count_opens(event: str, args: tuple) -> None:
    if COUNTING[0] and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
        OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_count_opens)  # audit hooks cannot be removed: it counts only when asked


def one_run(harness, settings: AugmentSettings):
    catalogue, report = harness.ingest()
    with catalogue:
        augmented = augment_pending(catalogue, harness.layout.processed, settings, 1)
        built = build_version(
            catalogue,
            harness.layout,
            store_dir(harness.layout.processed, settings),
            settings.key,
            harness.catalog.model_names(),
        )
    return report, augmented, built


def test_a_run_with_nothing_new_reads_no_annotation_file(harness, layout):
    harness.add_samples(25, seed=1, with_defects=True)
    settings = AugmentSettings(variants=1)
    first = one_run(harness, settings)
    assert first[0].validated_now > 0 and first[1].augmented > 0

    OPENED.clear()
    COUNTING[0] = True
    try:
        report, augmented, built = one_run(harness, settings)
    finally:
        COUNTING[0] = False
    under_root = [p for p in OPENED if Path(p).is_relative_to(layout.root)]
    # SQLite opens its files natively; Python opened nothing under the root.
    assert under_root == []
    assert report.validated_now == 0 and not report.rejected and not report.accepted
    assert augmented.augmented == 0
    assert built.reused and built.id == first[2].id


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
