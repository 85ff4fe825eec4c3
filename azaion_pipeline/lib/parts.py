"""Azaion's split storage: ``.small`` = the first N encrypted bytes (to the API), ``.big`` = the rest (to the CDN).

N = min(SMALL_SIZE_KB × 1024, 20% of the encrypted size), so neither store alone holds the model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from azaion_pipeline.lib.crypto import CHUNK_BYTES, encrypt_stream, encrypted_size
from azaion_pipeline.lib.hashing import sha256_file

SMALL_SIZE_KB = 3


def small_part_size(encrypted_bytes: int, small_size_kb: int = SMALL_SIZE_KB) -> int:
    # Azaion computes int(0.2 * size); for integers that equals size // 5 without float error.
    return min(small_size_kb * 1024, encrypted_bytes // 5)


@dataclass(frozen=True)
class Digest:
    size: int
    sha256: str


@dataclass(frozen=True)
class SplitResult:
    plaintext: Digest
    encrypted_size: int  # small + big; their two hashes already pin every encrypted byte
    small: Digest
    big: Digest


class _SplitWriter:
    """File-like sink that routes the first ``small_size`` bytes to one file and the rest to another."""

    def __init__(self, small: BinaryIO, big: BinaryIO, small_size: int):
        self._sinks = ((small, hashlib.sha256()), (big, hashlib.sha256()))
        self._small_left = small_size

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        if self._small_left:
            head, view = view[: self._small_left], view[self._small_left :]
            self._emit(0, head)
            self._small_left -= len(head)
        if view:
            self._emit(1, view)
        return len(data)

    def _emit(self, index: int, data: memoryview) -> None:
        sink, digest = self._sinks[index]
        sink.write(data)
        digest.update(data)

    def digests(self) -> tuple[str, str]:
        return self._sinks[0][1].hexdigest(), self._sinks[1][1].hexdigest()


class _HashingReader:
    def __init__(self, src: BinaryIO):
        self._src = src
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._src.read(size)
        self.digest.update(data)
        return data


def encrypt_and_split(
    source: Path,
    small_path: Path,
    big_path: Path,
    key_str: str,
    small_size_kb: int = SMALL_SIZE_KB,
    chunk_size: int = CHUNK_BYTES,
) -> SplitResult:
    """One streaming pass: read, encrypt and write both parts, hashing everything on the way."""
    plain_size = source.stat().st_size
    total = encrypted_size(plain_size)
    small_size = small_part_size(total, small_size_kb)
    with open(source, "rb") as src, open(small_path, "wb") as small, open(big_path, "wb") as big:
        reader = _HashingReader(src)
        writer = _SplitWriter(small, big, small_size)
        encrypt_stream(reader, writer, key_str, chunk_size)
    small_sha, big_sha = writer.digests()
    return SplitResult(
        plaintext=Digest(plain_size, reader.digest.hexdigest()),
        encrypted_size=total,
        small=Digest(small_size, small_sha),
        big=Digest(total - small_size, big_sha),
    )


class JoinedReader:
    """Reads ``small`` bytes then the ``big`` file: the encrypted blob, without joining on disk."""

    def __init__(self, small: bytes, big: BinaryIO):
        self._small = memoryview(small)
        self._big = big

    def read(self, size: int = -1) -> bytes:
        """Full reads across the seam: callers such as the IV read rely on getting ``size`` bytes."""
        n = len(self._small) if size < 0 else min(size, len(self._small))
        head, self._small = bytes(self._small[:n]), self._small[n:]
        if size < 0:
            return head + self._big.read()
        return head + self._big.read(size - n) if n < size else head


def digest_file(path: Path) -> Digest:
    return Digest(path.stat().st_size, sha256_file(path))
