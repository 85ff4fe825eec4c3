"""Near-duplicate search over 64-bit perceptual hashes (imagehash pHash).

Frames a second apart, a re-encoded copy or a slightly shifted or brightened image land
within a few bits of each other. Only new images are hashed (during validation); the
search compares them against every stored hash at once, vectorised.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Re-encoded, shifted (a few px) or brightened frames of textured (aerial-like) images
# land within 10 bits; distinct ones 22 or more apart (measured on generated terrain).
DEFAULT_MAX_DISTANCE = 10
CHUNKS = 4  # 16-bit pieces of the 64-bit hash
# Queries handled together: bounds the candidate arrays to a few tens of MB.
BLOCK = 256


def as_unsigned(hashes: Sequence[int]) -> np.ndarray:
    return np.asarray(hashes, dtype=np.int64).view(np.uint64)


def neighbours(
    queries: Sequence[int], stored: Sequence[int], max_distance: int
) -> list[np.ndarray]:
    """For each query hash, the sorted indices into ``stored`` within ``max_distance`` bits.

    Multi-index hashing: cut the 64 bits into four 16-bit chunks. Two hashes within ``d``
    bits differ by at most ``d // 4`` bits in at least one chunk (pigeonhole), so only
    hashes whose chunk lies within that radius of the query's are compared: a few % of
    all pairs, so the first run at 100k takes seconds, not the minutes of every pair.
    """
    query_array, stored_array = as_unsigned(queries), as_unsigned(stored)
    radius = max_distance // CHUNKS
    every_key = np.arange(1 << 16, dtype=np.uint64)
    flips = every_key[np.bitwise_count(every_key) <= radius]
    indexes = []
    for chunk in range(CHUNKS):
        shift = np.uint64(16 * chunk)
        keys = (stored_array >> shift) & np.uint64(0xFFFF)
        order = np.argsort(keys, kind="stable")
        starts = np.searchsorted(keys[order], every_key, "left")
        indexes.append((shift, order, np.append(starts, len(keys))))
    found: list[np.ndarray] = []
    for start in range(0, len(query_array), BLOCK):
        block = query_array[start : start + BLOCK]
        pairs = []
        for shift, order, starts in indexes:
            probes = (((block >> shift) & np.uint64(0xFFFF))[:, None] ^ flips[None, :]).astype(
                np.int64
            )
            left, counts = starts[probes], starts[probes + 1] - starts[probes]
            counts = counts.ravel()
            query_index = np.repeat(np.repeat(np.arange(len(block)), len(flips)), counts)
            within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            stored_index = order[np.repeat(left.ravel(), counts) + within]
            distance = np.bitwise_count(block[query_index] ^ stored_array[stored_index])
            keep = distance <= max_distance
            pairs.append(query_index[keep] * len(stored_array) + stored_index[keep])
        unique = np.unique(np.concatenate(pairs)) if pairs else np.empty(0, np.int64)
        query_of, stored_of = np.divmod(unique, max(len(stored_array), 1))
        bounds = np.searchsorted(query_of, np.arange(len(block) + 1))
        found.extend(stored_of[bounds[i] : bounds[i + 1]] for i in range(len(block)))
    return found
