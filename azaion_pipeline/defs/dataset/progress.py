"""Progress of long dataset steps in the run log, about every tenth of the work."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg


def progress_logger(context: dg.AssetExecutionContext, verb: str) -> Callable[[int, int], None]:
    last_logged = [-1]

    def log(done: int, total: int) -> None:
        decile = done * 10 // max(total, 1)
        if decile > last_logged[0] or done == total:
            last_logged[0] = decile
            context.log.info(f"{verb} {done}/{total}")

    return log
