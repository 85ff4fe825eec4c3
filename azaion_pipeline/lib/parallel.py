"""Process pools for the CPU-bound dataset work (validation, augmentation).

Processes, not threads: decoding, hashing and albumentations' Python glue hold the GIL.
Small batches run inline, because starting workers costs more than the work itself.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

INLINE_BELOW = 16
# Imported once by the fork server, so each worker starts with them already loaded.
PRELOAD = ["numpy", "cv2", "PIL.Image", "albumentations", "simplejpeg"]


def worker_count(requested: int = 0) -> int:
    """``requested`` workers, or every core this process may use when it is 0."""
    if requested > 0:
        return requested
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def process_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` processes set up for image work; use it as a context manager."""
    # forkserver: forking a multi-threaded Dagster run process is unsafe.
    context = multiprocessing.get_context("forkserver")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # its import would call PyPI
    context.set_forkserver_preload(PRELOAD)
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)


def _init_worker() -> None:
    """Set up a pool process for image work (the pool's initializer)."""
    # One OpenCV thread per process: the pool already uses every core.
    import cv2

    cv2.setNumThreads(1)
    _retain_freed_memory()


def _retain_freed_memory() -> None:
    """Keep freed image buffers in the process instead of giving them back to the kernel.

    Each transform allocates a fresh multi-MB image and frees the last; glibc returns such
    blocks (munmap, heap trim) and the next allocation faults every page in again: about
    8,500 page faults and 20-30 ms of system time per 1280x720 image with 7 variants.
    With the blocks kept, the same work takes ~20% less CPU. Short-lived workers only.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: keep the allocator's defaults
        return
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)  # glibc's maximum; an image under 32 MB
    libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)


def map_in_processes(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    workers: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
    inline_below: int = INLINE_BELOW,
) -> list[Result]:
    """``[function(item) for item in items]`` spread over processes, in input order.

    ``function`` must be picklable (a module-level function or a ``functools.partial``
    of one) and should return errors as values: an exception here ends the whole map.
    """
    total = len(items)
    workers = min(worker_count(workers), max(total, 1))
    if workers == 1 or total < inline_below:
        return list(_inline(function, items, on_progress))
    results: list = [None] * total
    chunks = _chunks(total, workers)
    with process_pool(workers) as pool:
        futures = {
            pool.submit(_run_chunk, function, [items[i] for i in chunk]): chunk for chunk in chunks
        }
        done = 0
        for future in as_completed(futures):
            chunk = futures[future]
            for index, result in zip(chunk, future.result(), strict=True):
                results[index] = result
            done += len(chunk)
            if on_progress:
                on_progress(done, total)
    return results


def map_in_threads(
    function: Callable[[Item], Result], items: Sequence[Item], workers: int = 0
) -> list[Result]:
    """``[function(item) for item in items]`` on threads, in input order.

    For work that spends its time in C code that releases the GIL (Pillow's decoder,
    hashlib, numpy): no process start-up (seconds with the fork server's imports), which
    would dwarf the work of a small batch.
    """
    workers = min(worker_count(workers), max(len(items), 1))
    if workers == 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))


def _inline(function, items, on_progress) -> Iterable:
    for done, item in enumerate(items, 1):
        yield function(item)
        if on_progress:
            on_progress(done, len(items))


def _run_chunk(function, items):
    return [function(item) for item in items]


def _chunks(total: int, workers: int) -> list[range]:
    """Shrinking chunks (guided scheduling): each takes 1/(4 x workers) of what is left.

    Big chunks first keep the IPC count low when items are cheap; chunks of one item at the
    end let every worker finish within about one item of the others when items are costly
    (with equal chunks the last one ran alone on one core while the others sat idle).
    """
    chunks, start = [], 0
    while start < total:
        size = max(1, (total - start) // (workers * 4))
        chunks.append(range(start, min(start + size, total)))
        start += size
    return chunks
