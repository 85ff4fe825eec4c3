"""Process pool helpers: chunking keeps every item once, in order; workers keep freed buffers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from azaion_pipeline.lib.parallel import _chunks, map_in_processes


@pytest.mark.parametrize(("total", "workers"), [(1, 2), (7, 2), (200, 2), (5000, 2), (999, 16)])
def test_chunks_cover_every_item_once_and_shrink_to_single_items(total, workers):
    chunks = _chunks(total, workers)
    assert [i for chunk in chunks for i in chunk] == list(range(total))
    sizes = [len(chunk) for chunk in chunks]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-1] == 1  # the tail: no worker waits on another's big last chunk
    assert len(chunks) <= max(total, 4 * workers * 12)  # few IPC round trips for cheap items


def test_pool_results_come_back_in_input_order():
    assert map_in_processes(abs, list(range(-40, 0)), workers=2) == list(range(40, 0, -1))


FAULTS = """
import resource, numpy as np
from azaion_pipeline.lib import parallel
if {retain}:
    parallel._retain_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
image = np.ones((720, 1280, 4), np.uint8)
def variant():
    # Like one variant's transforms: a chain of fresh 3.7 MB images, all freed at the end.
    steps = [image]
    for _ in range(4):
        steps.append(steps[-1] + 1)
for _ in range(3):
    variant()
before = faults()
for _ in range(20):
    variant()
print(faults() - before)
"""


def test_workers_keep_freed_image_buffers():
    def faults(retain: bool) -> int:
        code = FAULTS.format(retain=retain)
        return int(subprocess.check_output([sys.executable, "-c", code], text=True))

    # 80 fresh 3.7 MB images are ~72,000 pages: faulted in each time unless kept.
    assert faults(retain=False) > 20_000
    assert faults(retain=True) < 500
