"""How a downstream asset finds what its upstream produced.

Large artifacts never travel through an IO manager: each asset writes files at
content-addressed paths and records them in its materialization metadata. Downstream
assets read that metadata back from the instance.
"""

from __future__ import annotations

from typing import Any

import dagster as dg


def upstream_metadata(context: dg.AssetExecutionContext, asset_key: str) -> dict[str, Any]:
    """Plain values of the latest materialization metadata of ``asset_key``."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey(asset_key))
    if event is None or event.asset_materialization is None:
        raise dg.Failure(
            description=f"'{asset_key}' has never been materialized; materialize it first."
        )
    return {key: entry.value for key, entry in event.asset_materialization.metadata.items()}
