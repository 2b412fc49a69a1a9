"""Blob drops: the Event Grid blob trigger on `inbox` (the only kind Flex Consumption runs)."""

from __future__ import annotations

import azure.functions as func

from shared.jobs.ingest import ingest_blob
from shared.runtime import runtime
from shared.storage.clients import INBOX
from shared.telemetry import span

__all__ = ["bp"]

bp = func.Blueprint()


@bp.blob_trigger(
    arg_name="blob",
    path=f"{INBOX}/{{name}}",
    connection="AzureWebJobsStorage",
    source=func.BlobSource.EVENT_GRID,
)
def ingest(blob: func.InputStream) -> None:
    name = (
        (blob.name or "").split("/", 1)[-1]
        if (blob.name or "").startswith(f"{INBOX}/")
        else blob.name or ""
    )
    with span("ingest", blob=name):
        ingest_blob(runtime(), name)
