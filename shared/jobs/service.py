"""What the HTTP API does, without HTTP: submit, read, list, delete jobs; hand out links.

Submitting validates everything first (the spec, then a full decode of the image) and only
then writes, in this order: the idempotency claim, the source blob (create-only), the job and
operation rows (one transaction), the owner index row, the `jobs` queue message. A rejected
upload therefore leaves nothing behind, and every write is safe to repeat.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.errors import EmptyBody, InvalidRequest, NotFound, PayloadTooLarge
from shared.filenames import ascii_name, base_name
from shared.imaging.decode import validate
from shared.imaging.formats import FORMATS
from shared.jobs.model import JOB_ID, Job, JobStatus, Operation, OpStatus, Output, iso, utcnow
from shared.jobs.ratelimit import RateLimiter
from shared.jobs.spec import JobSpec, parse_spec, parse_spec_text
from shared.jobs.store import JobExists
from shared.jobs.webhooks import check_webhook_url
from shared.runtime import Runtime
from shared.security.auth import Principal
from shared.storage.clients import INBOX, JOBS_QUEUE, ORIGINALS, RESULTS

__all__ = [
    "JobService",
    "Submission",
    "job_document",
    "new_job_id",
    "operation_entry",
    "output_filename",
]

UPLOADS_PREFIX = "uploads/"
TERMINAL = ("succeeded", "partial", "failed")


def new_job_id() -> str:
    return secrets.token_hex(16)


def output_filename(job: Job, name: str, fmt: str) -> str:
    stem = job.filename.rsplit(".", 1)[0] if "." in job.filename else job.filename
    return f"{stem}-{name}.{FORMATS[fmt].extension}"


@dataclass(frozen=True)
class Submission:
    data: bytes
    spec: JobSpec
    filename: str = "image"
    idempotency_key: str | None = None


def public_status(job: Job) -> str:
    return JobStatus.QUEUED.value if job.status is JobStatus.AWAITING_UPLOAD else job.status.value


def operation_entry(op: Operation) -> dict[str, Any]:
    """An operation as the job document and the manifest both describe it (its error, if it
    failed; each adds its own view of the output)."""
    entry: dict[str, Any] = {
        "index": op.index,
        "name": op.name,
        "op": op.op,
        "status": op.status.value,
    }
    if op.error:
        entry["error"] = {"code": op.error.get("code"), "message": op.error.get("message")}
    return entry


def job_document(rt: Runtime, job: Job, operations: list[Operation]) -> dict[str, Any]:
    """The job as GET /api/jobs/<id> shows it, with fresh read-only links to outputs."""
    done = sum(1 for op in operations if op.status.terminal)
    entries = []
    for op in operations:
        entry = operation_entry(op)
        if op.status is OpStatus.SUCCEEDED and op.output is not None:
            url, expires = _output_link(rt, job, op, op.output)
            entry["output"] = {
                "url": url,
                "expiresAt": expires,
                "format": op.output.format,
                "contentType": op.output.content_type,
                "width": op.output.width,
                "height": op.output.height,
                "bytes": op.output.bytes,
            }
        entries.append(entry)
    document: dict[str, Any] = {
        "id": job.id,
        "status": public_status(job),
        "createdAt": iso(job.created_at),
        "completedAt": iso(job.completed_at),
        "source": job.source,
        "progress": {"done": done, "total": job.total},
        "operations": entries,
    }
    if job.status is JobStatus.AWAITING_UPLOAD:
        document["awaitingUpload"] = True
    if job.error:
        document["error"] = {"code": job.error.get("code"), "message": job.error.get("message")}
    if job.webhook:
        document["webhook"] = job.webhook
    return document


def _output_link(rt: Runtime, job: Job, op: Operation, output: Output) -> tuple[str, str | None]:
    """A short-lived read-only SAS link, or (outputs kept encrypted) the authenticated API
    path that streams the decrypted output."""
    if rt.settings.encrypt_outputs:
        return f"/api/jobs/{job.id}/outputs/{op.index}", None
    link = rt.sas.read_url(
        output.container, output.blob, filename=output.filename, content_type=output.content_type
    )
    return link.url, link.expires_iso


@dataclass(frozen=True)
class OutputAccess:
    """How a client gets an output: a redirect to a SAS link, or the bytes themselves."""

    redirect: str | None = None
    content: bytes = b""
    content_type: str = "application/octet-stream"
    filename: str = "output"


def job_summary(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "status": public_status(job),
        "createdAt": iso(job.created_at),
        "completedAt": iso(job.completed_at),
        "source": job.source,
        "operations": job.total,
        "statusUrl": f"/api/jobs/{job.id}",
    }


class JobService:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings = rt.settings
        self.limiter = RateLimiter(rt.store.index, rt.settings.jobs_per_minute)

    # -- submit --------------------------------------------------------------------------------

    def submit(self, principal: Principal, submission: Submission) -> tuple[Job, bool]:
        """Validate and start a job. Returns the job and whether it was created just now."""
        if not submission.data:
            raise EmptyBody()
        if len(submission.data) > self.settings.max_upload_bytes:
            raise PayloadTooLarge(limit=self.settings.max_upload_bytes)
        self.check_spec(submission.spec)
        _, probe = validate(submission.data, self.settings.limits())
        job_id = new_job_id()
        if submission.idempotency_key:
            job_id = self.rt.store.claim_idempotency_key(
                principal.key,
                submission.idempotency_key,
                job_id,
                window=timedelta(hours=self.settings.idempotency_hours),
            )
            existing = self.rt.store.get(job_id)
            if existing is not None:
                if existing.owner != principal.key:  # pragma: no cover - keys are per owner
                    raise NotFound()
                if existing.status is JobStatus.QUEUED and not existing.dispatched:
                    self.rt.send(JOBS_QUEUE, {"jobId": existing.id})  # dispatch is idempotent
                return existing, False
        self.limiter.take(principal.key)  # counts accepted jobs only (idempotent replays don't)
        source_blob = f"{job_id}/source"
        self.rt.private_blobs.put(
            ORIGINALS,
            source_blob,
            submission.data,
            content_type=FORMATS[probe.format].mime,
            metadata={"job": job_id},
        )
        job = Job(
            id=job_id,
            owner=principal.key,
            status=JobStatus.QUEUED,
            created_at=utcnow(),
            total=len(submission.spec.operations),
            source_container=ORIGINALS,
            source_blob=source_blob,
            output_container=RESULTS,
            output_prefix=f"{job_id}/",
            filename=base_name(submission.filename, "image"),
            origin="http",
            source=probe.to_dict(),
            spec=submission.spec.to_dict(),
            webhook_url=submission.spec.webhook_url,
        )
        return self.create(job, submission.spec), True

    def spec(self, raw: Any = None, *, text: str | bytes | None = None) -> JobSpec:
        """Parse a spec (a decoded object, or JSON text) under this deployment's limits."""
        s = self.settings
        if text is not None:
            return parse_spec_text(
                text,
                max_operations=s.max_operations,
                max_chain_steps=s.max_chain_steps,
                default_preset=s.default_preset,
            )
        return parse_spec(
            raw,
            max_operations=s.max_operations,
            max_chain_steps=s.max_chain_steps,
            default_preset=s.default_preset,
        )

    def check_spec(self, spec: JobSpec) -> None:
        """Checks that need settings (the webhook target); the parser did the rest."""
        if spec.webhook_url:
            check_webhook_url(spec.webhook_url, allow_private=self.settings.webhook_allow_private)

    def create(self, job: Job, spec: JobSpec) -> Job:
        """Create the job's rows and queue it for dispatch (an existing job is returned)."""
        operations = [Operation(job.id, o.index, o.name, o.op, o.chain) for o in spec.operations]
        try:
            self.rt.store.create(job, operations)
        except JobExists:
            existing = self.rt.store.get(job.id)
            assert existing is not None
            return existing
        if job.status is JobStatus.QUEUED:
            self.rt.send(JOBS_QUEUE, {"jobId": job.id})
        return job

    # -- read ----------------------------------------------------------------------------------

    def _owned(self, principal: Principal, job_id: str) -> tuple[Job, list[Operation]]:
        if not JOB_ID.match(job_id or ""):
            raise NotFound("No such job.")
        job, operations = self.rt.store.get_with_operations(job_id)
        if job is None or job.owner != principal.key:
            raise NotFound("No such job.")  # never 403: do not reveal that it exists
        return job, operations

    def get(self, principal: Principal, job_id: str) -> dict[str, Any]:
        job, operations = self._owned(principal, job_id)
        return job_document(self.rt, job, operations)

    def list(
        self, principal: Principal, cursor: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        size = max(1, min(limit or self.settings.page_size, 200))
        if cursor is not None and (
            len(cursor) > 64 or not all(c.isalnum() or c == "-" for c in cursor)
        ):
            raise InvalidRequest("The cursor is not valid.", path="cursor")
        page = self.rt.store.list_for(principal.key, limit=size, cursor=cursor)
        return {"jobs": [job_summary(job) for job in page.jobs], "next": page.next_cursor}

    def output(self, principal: Principal, job_id: str, ref: str) -> OutputAccess:
        """One output by index or name: a fresh SAS link to redirect to, or, when outputs
        are kept client-side encrypted, its decrypted bytes."""
        job, operations = self._owned(principal, job_id)
        for op in operations:
            if ref not in (str(op.index), op.name):
                continue
            output = op.output
            if op.status is not OpStatus.SUCCEEDED or output is None:
                raise NotFound("That output does not exist (yet).")
            if self.settings.encrypt_outputs:
                data = self.rt.blobs_for(output.container).get(output.container, output.blob)
                return OutputAccess(None, data, output.content_type, output.filename)
            url, _ = _output_link(self.rt, job, op, output)
            return OutputAccess(redirect=url)
        raise NotFound("The job has no output by that index or name.")

    # -- delete --------------------------------------------------------------------------------

    def delete(self, principal: Principal, job_id: str) -> None:
        try:
            job, operations = self._owned(principal, job_id)
        except NotFound:
            return  # idempotent
        for op in operations:
            if op.output is not None:
                self.rt.blobs_for(op.output.container).delete(op.output.container, op.output.blob)
        self.rt.blobs_for(job.output_container).delete(
            job.output_container, f"{job.output_prefix}manifest.json"
        )
        self.rt.blobs_for(job.source_container).delete(job.source_container, job.source_blob)
        self.rt.store.delete(job)

    # -- upload URLs ---------------------------------------------------------------------------

    def create_upload(self, principal: Principal, body: Any) -> dict[str, Any]:
        """Register a job owned by the caller and hand out a write-only URL for its image."""
        if not isinstance(body, dict):
            raise InvalidRequest("The body must be a JSON object.")
        filename = body.get("filename")
        size = body.get("bytes")
        if not isinstance(filename, str) or not filename.strip():
            raise InvalidRequest("filename is required.", path="filename")
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise InvalidRequest("bytes must be the file's size in bytes.", path="bytes")
        if size > self.settings.max_blob_bytes:
            raise PayloadTooLarge(limit=self.settings.max_blob_bytes)
        spec_raw = {k: v for k, v in body.items() if k in ("operations", "preset", "webhook")}
        spec = self.spec(spec_raw or None)
        self.check_spec(spec)
        self.limiter.take(principal.key)
        job_id = new_job_id()
        name = base_name(filename, "image")
        blob = f"{UPLOADS_PREFIX}{job_id}/{ascii_name(name, 'image', 100)}"
        job = Job(
            id=job_id,
            owner=principal.key,
            status=JobStatus.AWAITING_UPLOAD,
            created_at=utcnow(),
            total=len(spec.operations),
            source_container=INBOX,
            source_blob=blob,
            output_container=RESULTS,
            output_prefix=f"{job_id}/",
            filename=name,
            origin="upload",
            spec=spec.to_dict(),
            webhook_url=spec.webhook_url,
        )
        self.create(job, spec)
        link = self.rt.sas.upload_url(INBOX, blob)
        return {
            "jobId": job_id,
            "uploadUrl": link.url,
            "expiresAt": link.expires_iso,
            "statusUrl": f"/api/jobs/{job_id}",
            "maxBytes": self.settings.max_blob_bytes,
        }
