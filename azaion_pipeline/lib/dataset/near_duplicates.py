"""Near-duplicate search over 64-bit perceptual hashes (imagehash pHash).

Frames a second apart, a re-encoded copy or a slightly shifted or brightened image land
within a few bits of each other. Only new images are hashed (during validation); the
search compares them against every stored hash at once, vectorised.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

DEFAULT_MAX_DISTANCE = 8
# Queries handled together: bounds the candidate arrays to a few tens of MB.
BLOCK = 1024


def as_unsigned(hashes: Sequence[int]) -> np.ndarray:
    return np.asarray(hashes, dtype=np.int64).view(np.uint64)


def neighbours(
    queries: Sequence[int], stored: Sequence[int], max_distance: int
) -> list[np.ndarray]:
    """For each query hash, the sorted indices into ``stored`` within ``max_distance`` bits.

    Multi-index hashing: cut the 64 bits into ``max_distance + 1`` chunks; two hashes
    within that distance agree exactly on at least one chunk (pigeonhole). So only hashes
    sharing a chunk with the query are compared, about 1/16 of all at distance 8, instead
    of every pair: the first run at 100k stays seconds, not minutes.
    """
    query_array, stored_array = as_unsigned(queries), as_unsigned(stored)
    found: list[np.ndarray] = []
    edges = np.linspace(0, 64, max_distance + 2).astype(np.uint64)
    chunks = []
    for low, high in itertools.pairwise(edges):
        mask = np.uint64((1 << int(high - low)) - 1)
        keys = (stored_array >> low) & mask
        order = np.argsort(keys, kind="stable")
        chunks.append((low, mask, keys[order], order))
    for start in range(0, len(query_array), BLOCK):
        block = query_array[start : start + BLOCK]
        pairs = []
        for low, mask, sorted_keys, order in chunks:
            keys = (block >> low) & mask
            left = np.searchsorted(sorted_keys, keys, "left")
            counts = np.searchsorted(sorted_keys, keys, "right") - left
            query_index = np.repeat(np.arange(len(block)), counts)
            within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            stored_index = order[np.repeat(left, counts) + within]
            close = np.bitwise_count(block[query_index] ^ stored_array[stored_index])
            keep = close <= max_distance
            pairs.append(query_index[keep] * len(stored_array) + stored_index[keep])
        unique = np.unique(np.concatenate(pairs)) if pairs else np.empty(0, np.int64)
        query_of, stored_of = np.divmod(unique, max(len(stored_array), 1))
        bounds = np.searchsorted(query_of, np.arange(len(block) + 1))
        found.extend(stored_of[bounds[i] : bounds[i + 1]] for i in range(len(block)))
    return found
