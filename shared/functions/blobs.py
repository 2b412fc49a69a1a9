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
    full = blob.name or ""
    name = full.split("/", 1)[1] if full.startswith(f"{INBOX}/") else full
    rt = runtime()
    small = blob.length is not None and blob.length <= rt.settings.max_blob_bytes
    with span("ingest", blob=name):
        ingest_blob(rt, name, blob.read() if small else None)
