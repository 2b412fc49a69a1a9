"""Blob drops: an image dropped in the `inbox` container becomes a job, without any HTTP call.

Two kinds of blobs arrive in `inbox`:

* `uploads/<job id>/<file>`: the image for a job registered by `POST /api/uploads` (owned by
  the principal that asked for the upload URL, spec given then);
* anything else: a plain drop. The spec comes from the blob's metadata `pixelpipe_spec`
  (JSON) or `pixelpipe_preset`, else the default preset; the job id is derived from the
  blob's name and ETag, so a repeated Event Grid delivery never starts a second job; outputs
  go to `outbox/<name without extension>/` with a `manifest.json` written last.

Either way the image is validated like an HTTP upload, copied into `originals` (where it is
encrypted) and removed from `inbox`. A blob that is not an acceptable image is moved to
`quarantine/<date>/<id>/<name>` next to an `.error.json` record and starts nothing (a
registered upload job is marked failed with the same error, so its owner sees why).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from shared.errors import ClientError, PayloadTooLarge, PixelpipeError
from shared.filenames import base_name
from shared.imaging.decode import validate
from shared.imaging.formats import FORMATS
from shared.jobs.model import Job, JobStatus, iso, utcnow
from shared.jobs.service import UPLOADS_PREFIX, JobService
from shared.jobs.spec import JobSpec
from shared.runtime import Runtime
from shared.storage.clients import INBOX, JOBS_QUEUE, ORIGINALS, OUTBOX, QUARANTINE

__all__ = ["BLOB_DROP_OWNER", "ingest_blob"]

log = logging.getLogger(__name__)

BLOB_DROP_OWNER = "system/blob-drop"


def blob_job_id(name: str, etag: str) -> str:
    return hashlib.sha256(f"{name}\n{etag}".encode()).hexdigest()[:32]


def _spec_from_metadata(rt: Runtime, metadata: dict[str, str]) -> JobSpec:
    lowered = {k.lower(): v for k, v in metadata.items()}
    service = JobService(rt)
    if lowered.get("pixelpipe_spec"):
        return service.spec(text=lowered["pixelpipe_spec"])
    if lowered.get("pixelpipe_preset"):
        return service.spec({"preset": lowered["pixelpipe_preset"]})
    return service.spec(None)


def ingest_blob(rt: Runtime, name: str, content: bytes | None = None) -> Job | None:
    """Turn `inbox/<name>` into a job (or quarantine it). Safe to call repeatedly.

    `content` is the blob's bytes when the trigger already has them (they are then not
    downloaded again); blobs over the size cap are never read at all.
    """
    try:
        props = rt.plain_blobs.properties(INBOX, name)
    except PixelpipeError:
        return None  # already ingested (and removed) by an earlier event
    registered = _registered_job(rt, name)
    if registered is not None and registered.status is not JobStatus.AWAITING_UPLOAD:
        return registered  # a repeated event for an upload already taken in
    job_id = registered.id if registered else blob_job_id(name, props.etag)
    if registered is None and (existing := rt.store.get(job_id)) is not None:
        return existing
    data: bytes | None = None
    try:
        if props.size > rt.settings.max_blob_bytes:
            raise PayloadTooLarge(
                f"The blob is {props.size} bytes; the limit is {rt.settings.max_blob_bytes}."
            )
        data = content if content is not None else rt.plain_blobs.get(INBOX, name)
        spec = (
            JobSpec.from_dict(registered.spec)
            if registered and registered.spec
            else _spec_from_metadata(rt, dict(props.metadata or {}))
        )
        JobService(rt).check_spec(spec)
        _, probe = validate(data, rt.settings.limits())
    except ClientError as exc:
        _quarantine(rt, name, job_id, exc, props.etag, data)
        if registered is not None:
            rt.store.finish(registered, JobStatus.FAILED, error=exc.to_dict())
        return None
    source_blob = f"{job_id}/source"
    rt.private_blobs.put(
        ORIGINALS,
        source_blob,
        data,
        content_type=FORMATS[probe.format].mime,
        metadata={"job": job_id},
    )
    if registered is not None:
        job = rt.store.update_job(
            registered,
            status=JobStatus.QUEUED,
            source=probe.to_dict(),
            source_container=ORIGINALS,
            source_blob=source_blob,
        )
        rt.send(JOBS_QUEUE, {"jobId": job.id})
    else:
        stem = name.rsplit("/", 1)[-1]
        stem = stem.rsplit(".", 1)[0] if "." in stem else stem
        prefix_path = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
        job = JobService(rt).create(
            Job(
                id=job_id,
                owner=BLOB_DROP_OWNER,
                status=JobStatus.QUEUED,
                created_at=utcnow(),
                total=len(spec.operations),
                source_container=ORIGINALS,
                source_blob=source_blob,
                output_container=OUTBOX,
                output_prefix=f"{prefix_path}{stem}/",
                filename=base_name(name, "image"),
                origin="blob",
                source=probe.to_dict(),
                spec=spec.to_dict(),
                webhook_url=spec.webhook_url,
            ),
            spec,
        )
    rt.plain_blobs.delete(INBOX, name)
    return job


def _registered_job(rt: Runtime, name: str) -> Job | None:
    if not name.startswith(UPLOADS_PREFIX):
        return None
    parts = name[len(UPLOADS_PREFIX) :].split("/", 1)
    return rt.store.get(parts[0]) if len(parts) == 2 else None


def _quarantine(
    rt: Runtime, name: str, job_id: str, error: PixelpipeError, etag: str, data: bytes | None
) -> None:
    """Move the blob to quarantine with an error record; it starts nothing.

    Content we have already read is re-written through the private (encrypted) store; a blob
    too large to read is copied server-side instead.
    """
    now = utcnow()
    base = f"{now:%Y-%m-%d}/{job_id}/{name.rsplit('/', 1)[-1]}"
    if data is not None:
        rt.private_blobs.put(QUARANTINE, base, data, content_type="application/octet-stream")
    else:
        source = rt.sas.read_url(
            INBOX, name, filename="quarantined", content_type="application/octet-stream"
        )
        rt.plain_blobs.copy_from_url(source.url, QUARANTINE, base)  # too big to re-encrypt
    record: dict[str, Any] = {
        "blob": f"{INBOX}/{name}",
        "etag": etag,
        "at": iso(now),
        "quarantinedAs": f"{QUARANTINE}/{base}",
        "error": error.to_dict(),
    }
    rt.private_blobs.put(
        QUARANTINE,
        f"{base}.error.json",
        json.dumps(record, indent=2).encode(),
        content_type="application/json",
    )
    rt.plain_blobs.delete(INBOX, name)
    log.warning("quarantined inbox/%s: %s", name, error.code)
