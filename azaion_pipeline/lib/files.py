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
        try:
            os.link(source, partial)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copy2(source, partial)
            copied = True
        os.replace(partial, target)  # atomic: readers see the old file or the new one
    except BaseException:
        partial.unlink(missing_ok=True)  # a copy cut short by a full disk leaves nothing
        raise
    return copied


def write_atomic(target: Path, data: bytes) -> None:
    """Readers see the old file or the new one; a failed write (a full disk) leaves nothing."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(partial, "wb") as out:
            out.write(data)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
