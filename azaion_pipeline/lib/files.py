"""File placement without copying bytes: hard links, with a copy only across filesystems."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


def link_or_copy(source: Path | str, target: Path | str) -> bool:
    """Place ``source`` at ``target`` (replacing it); True when bytes had to be copied."""
    target = Path(target)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    copied = False
    try:
        os.link(source, partial)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(source, partial)
        copied = True
    os.replace(partial, target)  # atomic: readers see the old file or the new one
    return copied


def write_atomic(target: Path, data: bytes) -> None:
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    partial.write_bytes(data)
    os.replace(partial, target)
