"""The dataset stage at scale: does a run cost what changed, or what exists?

Synthetic roots of ``BENCH_SCALE_SIZES`` annotations (default 10,000 and 100,000) built
from a few hundred real sample pairs: labels are hard links of the samples' labels; each
image is a sample blended with its own low-frequency relief and re-encoded, because
byte-identical copies would be quarantined as duplicates and look-alike copies grouped as
near-twins (hard-linked images would measure the quarantine, not the stage).

For each root, in the same run, the three dataset assets and their checks run through
Dagster (one process per run, as ingest_job does), each run in a fresh subprocess:
first full run, then a run with nothing new, +100 new and -100 deleted, each twice:
- ``stream``: the root as the stream feeds it; each change comes with a sealed batch
  manifest, written by the consumer's own ``BatchTally``/``BatchLog`` (a Validated bulk
  message for +100, a Deleted one for -100), and a run reads only the new manifests;
- ``listing``: ``rescan_hours=0``, every run lists the folders (a folder-fed root, or the
  stream-fed root's periodic reconciliation).
Printed: wall time of each
(inside the process, without interpreter start-up), peak RSS (the run's process, and its
whole process tree's proportional set size sampled every 0.1 s: pool workers are fork
server grandchildren sharing its pages), directory entries each new version created, catalogue open time, and
the ratios 100k / 10k. ``BENCH_SCALE_VARIANTS`` (default 0) sets augmentation variants:
augmentation throughput has its own benchmark (bench_dataset); the issue's bar for +100 is
"30 s plus the augmentation of the 100".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SIZES = [int(n) for n in os.environ.get("BENCH_SCALE_SIZES", "10000,100000").split(",")]
VARIANTS = int(os.environ.get("BENCH_SCALE_VARIANTS", 0))
BASE_PAIRS = 300
DELTA = 100
IMAGE_SIZE = (96, 72)
MODES = {"stream": 24.0, "listing": 0.0}  # rescan_hours of each
RUNS = ("nothing_new", "plus_100", "minus_100")

RUN = textwrap.dedent(
    """
    import json, resource, sys, time
    import dagster as dg
    from azaion_pipeline.defs.dataset.augmented_dataset import augmented_dataset
    from azaion_pipeline.defs.dataset.checks import (
        every_split_non_empty, labels_in_range, no_near_twins_across_splits,
    )
    from azaion_pipeline.defs.dataset.raw_annotations import raw_annotations
    from azaion_pipeline.defs.dataset.training_dataset import training_dataset
    from azaion_pipeline.defs.io import RecordIOManager
    from azaion_pipeline.defs.resources import AzaionStorage

    import threading
    import psutil

    root, variants, rescan = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    peak = [0, 0]  # this process, its whole tree (pool workers are forkserver grandchildren)

    def sample():
        me = psutil.Process()
        while True:
            try:  # PSS: pages the workers share with the fork server count once
                own = me.memory_info().rss
                tree = me.memory_full_info().pss + sum(
                    c.memory_full_info().pss for c in me.children(recursive=True)
                )
            except psutil.Error:
                continue
            peak[0], peak[1] = max(peak[0], own), max(peak[1], tree)
            time.sleep(0.1)

    threading.Thread(target=sample, daemon=True).start()
    started = time.perf_counter()
    result = dg.materialize(
        [raw_annotations, augmented_dataset, training_dataset,
         no_near_twins_across_splits, every_split_non_empty, labels_in_range],
        instance=dg.DagsterInstance.ephemeral(),
        resources={"storage": AzaionStorage(root_dir=root),
                   "io_manager": RecordIOManager(root_dir=root)},
        run_config={"ops": {
            "raw_annotations": {"config": {"rescan_hours": rescan}},
            "augmented_dataset": {"config": {"variants": variants}},
        }},
    )
    seconds = time.perf_counter() - started
    version = result.output_for_node("training_dataset")
    raw = result.output_for_node("raw_annotations")
    own = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, peak[0])
    print(json.dumps({
        "seconds": seconds, "success": result.success, "version": version.version,
        "reused": version.reused_existing, "images": version.images, "valid": raw.valid,
        "validated_now": raw.validated_now, "listed": raw.listed, "rss_mb": own / 2**20, "tree_rss_mb": peak[1] / 2**20,
    }))
    """
)


def make_root(root: Path, count: int, bases: list[tuple[Path, Path]], offset: int = 0) -> None:
    """``count`` unique pairs under data/ (see the module docstring)."""
    import cv2
    import numpy as np

    images, labels = root / "data" / "images", root / "data" / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(offset)
    decoded = [cv2.imread(str(image)) for image, _ in bases]
    width, height = IMAGE_SIZE
    for index in range(offset, offset + count):
        base = decoded[index % len(bases)]
        relief = cv2.resize(
            rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), (width, height), cv2.INTER_CUBIC
        )
        image = cv2.addWeighted(base, 0.5, relief, 0.5, 0)
        name = f"synthetic-{index:07d}"
        cv2.imwrite(str(images / f"{name}.jpg"), image)
        os.link(bases[index % len(bases)][1], labels / f"{name}.txt")


def sample_pairs(work: Path) -> list[tuple[Path, Path]]:
    from azaion_pipeline.lib.classes import ClassCatalog
    from azaion_pipeline.lib.layout import AzaionLayout
    from azaion_pipeline.lib.sample_data import generate_sample_data
    from azaion_pipeline.lib.settings import load_settings

    layout = AzaionLayout.under(work / "samples")
    catalog = ClassCatalog.load(load_settings().resolved_classes_file())
    report = generate_sample_data(layout, catalog, BASE_PAIRS, seed=7, size=IMAGE_SIZE)
    return [
        (layout.data / "images" / f"{n}.jpg", layout.data / "labels" / f"{n}.txt")
        for n in report.valid
    ]


def seal(root: Path, names: list[str], status) -> None:
    """A sealed batch naming ``names``, as the consumer writes it after a bulk message."""
    from azaion_pipeline.lib.intake.batches import BatchLog, BatchTally
    from azaion_pipeline.lib.intake.messages import AnnotationBulkMessage
    from azaion_pipeline.lib.intake.store import Effect
    from azaion_pipeline.lib.layout import AzaionLayout

    log = BatchLog(AzaionLayout.under(root))
    log.prepare()
    offset = len(log.sealed_since(0)[0])
    tally = BatchTally()
    tally.count(
        offset, AnnotationBulkMessage(names=tuple(names), status=status), Effect.MOVED, False
    )
    log.seal(tally.manifest("bench", "bench"), tally.names)


def run(root: Path, mode: str = "listing") -> dict:
    project = Path(__file__).resolve().parents[1]
    process = subprocess.run(
        [sys.executable, "-c", RUN, str(root), str(VARIANTS), str(MODES[mode])],
        env={**os.environ, "PYTHONPATH": str(project), "DAGSTER_HOME": str(root / ".dagster")},
        capture_output=True,
        text=True,
        check=False,
    )
    if process.returncode != 0:
        raise RuntimeError(process.stderr[-4000:])
    return json.loads(process.stdout.strip().splitlines()[-1])


def entries(folder: Path) -> int:
    return (
        sum(len(dirs) + len(files) for _, dirs, files in os.walk(folder)) if folder.exists() else 0
    )


def catalogue_open_seconds(root: Path) -> float:
    from azaion_pipeline.lib.dataset.catalogue import Catalogue, catalogue_path
    from azaion_pipeline.lib.layout import AzaionLayout

    started = time.perf_counter()
    with Catalogue(catalogue_path(AzaionLayout.under(root))) as catalogue:
        catalogue.count()
    return time.perf_counter() - started


def synthetic_names(start: int, count: int) -> list[str]:
    return [f"synthetic-{index:07d}" for index in range(start, start + count)]


def measure(work: Path, size: int, bases) -> dict:
    from azaion_pipeline.lib.intake.messages import AnnotationStatus

    root = work / f"root-{size}"
    made = time.perf_counter()
    make_root(root, size, bases)
    seal(root, synthetic_names(0, size), AnnotationStatus.VALIDATED)
    print(f"  {size}: root built in {time.perf_counter() - made:.0f} s", flush=True)
    figures = {"first": run(root)}
    for mode in MODES:
        figures[f"nothing_new/{mode}"] = run(root, mode)
    # Each mode adds and deletes its own 100: the stream's come with a sealed batch.
    for index, mode in enumerate(MODES):
        before = entries(root / "datasets")
        make_root(root, DELTA, bases, offset=size + index * DELTA)
        if mode == "stream":
            seal(root, synthetic_names(size + index * DELTA, DELTA), AnnotationStatus.VALIDATED)
        figures[f"plus_100/{mode}"] = run(root, mode)
        figures[f"entries_plus/{mode}"] = entries(root / "datasets") - before
    images, labels = root / "data" / "images", root / "data" / "labels"
    for index, mode in enumerate(MODES):
        gone = synthetic_names(index * DELTA, DELTA)
        for name in gone:
            (images / f"{name}.jpg").unlink()
            (labels / f"{name}.txt").unlink()
        if mode == "stream":
            seal(root, gone, AnnotationStatus.DELETED)
        before = entries(root / "datasets")
        figures[f"minus_100/{mode}"] = run(root, mode)
        figures[f"entries_minus/{mode}"] = entries(root / "datasets") - before
    figures["open"] = catalogue_open_seconds(root)
    for name in ("first", *(f"{r}/{m}" for r in RUNS for m in MODES)):
        f = figures[name]
        print(
            f"    {name:20s} {f['seconds']:7.1f} s  valid {f['valid']:>7}  "
            f"validated {f['validated_now']:>7}  listed {f['listed']!s:5}  "
            f"rss {f['rss_mb']:.0f} MB (tree PSS {f['tree_rss_mb']:.0f} MB)  "
            f"version {f['version']}",
            flush=True,
        )
    shutil.rmtree(root)
    return figures


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        bases = sample_pairs(work)
        print(
            f"scale: roots of {SIZES} annotations from {len(bases)} sample pairs "
            f"({IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}), {VARIANTS} variants; load {os.getloadavg()}"
        )
        results = {size: measure(work, size, bases) for size in SIZES}
    for size, f in results.items():
        runs = ("first", *(f"{r}/{m}" for r in RUNS for m in MODES))
        peak = max(f[n]["rss_mb"] for n in runs)
        tree = max(f[n]["tree_rss_mb"] for n in runs)
        print(
            f"  {size}: first {f['first']['seconds']:.1f} s; peak RSS {peak:.0f} MB, process "
            f"tree PSS {tree:.0f} MB (goal <= 400 MB at 100k); catalogue opens in "
            f"{1000 * f['open']:.1f} ms"
        )
        for mode in MODES:
            print(
                f"    {mode:8s} no change {f[f'nothing_new/{mode}']['seconds']:.1f} s "
                f"(goal <= 10 s); +{DELTA} {f[f'plus_100/{mode}']['seconds']:.1f} s; "
                f"-{DELTA} {f[f'minus_100/{mode}']['seconds']:.1f} s; directory entries per "
                f"new version: +{DELTA} {f[f'entries_plus/{mode}']}, "
                f"-{DELTA} {f[f'entries_minus/{mode}']} (goal <= 100)"
            )
    if len(SIZES) >= 2:
        small, large = results[SIZES[0]], results[SIZES[-1]]
        for mode in MODES:
            for name in RUNS:
                key = f"{name}/{mode}"
                ratio = large[key]["seconds"] / small[key]["seconds"]
                print(f"  {key:20s} {SIZES[-1]} / {SIZES[0]} = {ratio:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
