"""The work behind the queue triggers and the finalize activity, without Azure types.

    dispatch   jobs queue -> start the orchestration (instance id = job id) -> one `ops`
               message per operation, then mark the job dispatched (so a repeated message
               does not fan out again)
    operation  ops queue -> load the source -> run the chain -> write the output create-only
               -> complete the operation row -> (the trigger raises `op-<index>`)
    poison     ops-poison queue -> complete the operation as failed -> (raise `op-<index>`)
    finalize   after the orchestration's fan-in: time out what is left, make the job row
               terminal, write the manifest last, return the result document

Every step is idempotent: messages are delivered at least once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from shared.errors import NotFound, OperationTimeout, OutputConflict, PixelpipeError, Unavailable
from shared.imaging.formats import FORMATS
from shared.imaging.parallel import default_threads
from shared.imaging.pipeline import Chain, run
from shared.jobs.model import Job, JobStatus, Operation, OpStatus, Output, iso, utcnow
from shared.jobs.service import job_document, operation_entry, output_filename
from shared.jobs.webhooks import deliver
from shared.runtime import Runtime
from shared.security.secrets import SecretError
from shared.storage.clients import OPS_QUEUE
from shared.storage.sas import content_disposition

__all__ = [
    "OpTask",
    "deliver_job_webhook",
    "dispatch_tasks",
    "fail_operation",
    "finalize",
    "operation_outcome",
    "operation_threads",
    "run_operation",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpTask:
    """Everything a worker needs, carried in the message (no reads before the work starts)."""

    job_id: str
    index: int
    name: str
    chain: Chain
    source_container: str
    source_blob: str
    output_container: str
    output_blob: str
    filename: str

    def to_message(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "index": self.index,
            "name": self.name,
            "chain": self.chain.to_dict(),
            "source": {"container": self.source_container, "blob": self.source_blob},
            "output": {
                "container": self.output_container,
                "blob": self.output_blob,
                "filename": self.filename,
            },
        }

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> OpTask:
        return cls(
            data["jobId"],
            int(data["index"]),
            data["name"],
            Chain.from_dict(data["chain"]),
            data["source"]["container"],
            data["source"]["blob"],
            data["output"]["container"],
            data["output"]["blob"],
            data["output"]["filename"],
        )


def orchestration_input(rt: Runtime, job: Job) -> dict[str, Any]:
    return {
        "jobId": job.id,
        "total": job.total,
        "deadlineSeconds": rt.settings.job_deadline_seconds,
        "webhook": bool(job.webhook_url),
    }


def dispatch_tasks(rt: Runtime, job: Job, operations: list[Operation]) -> list[OpTask]:
    """One task per operation that is not finished yet."""
    source_format = (job.source or {}).get("format", "png")
    tasks = []
    for op in operations:
        if op.status.terminal:
            continue
        fmt = op.chain.output_format(source_format)
        tasks.append(
            OpTask(
                job.id,
                op.index,
                op.name,
                op.chain,
                job.source_container,
                job.source_blob,
                job.output_container,
                f"{job.output_prefix}{op.name}.{FORMATS[fmt].extension}",
                output_filename(job, op.name, fmt),
            )
        )
    return tasks


def enqueue(rt: Runtime, job: Job, tasks: list[OpTask]) -> Job:
    """Fan out (once): one `ops` message per task, then mark the job dispatched."""
    if job.dispatched:
        return job
    rt.send_many(OPS_QUEUE, [task.to_message() for task in tasks])
    return rt.store.mark_dispatched(job)


def operation_outcome(op: Operation) -> dict[str, Any]:
    """The small event payload for `op-<index>`."""
    if op.status is OpStatus.SUCCEEDED and op.output is not None:
        return {"status": "succeeded", "output": op.output.to_dict()}
    return {"status": "failed", "error": op.error or {"code": "INTERNAL"}}


class _Running:
    """How many operations this process is running right now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    @contextmanager
    def slot(self) -> Iterator[int]:
        """Count one more while inside; yields the count including this one."""
        with self._lock:
            self.count += 1
            running = self.count
        try:
            yield running
        finally:
            with self._lock:
                self.count -= 1


_RUNNING = _Running()


def operation_threads(configured: int, cores: int, running: int) -> int:
    """Threads for one operation's band-parallel steps: the configured number, else the
    cores shared out among the operations the process runs at once. A lone operation uses
    every core; two side by side (a queue batch) take one each, because splitting bands
    across cores another operation already keeps busy only adds work."""
    if configured > 0:
        return configured
    return max(1, cores // max(1, running))


def run_operation(rt: Runtime, task: OpTask) -> dict[str, Any]:
    """Do one operation and record it. Permanent failures are recorded and returned;
    transient ones raise, so the message comes back."""
    done = rt.store.get_operation(task.job_id, task.index)
    if done is None:
        return {"status": "failed", "error": NotFound("The job was deleted.").to_dict()}
    if done.status.terminal:
        return operation_outcome(done)  # a redelivered message: nothing to do
    try:
        source = rt.blobs_for(task.source_container).get(task.source_container, task.source_blob)
        with _RUNNING.slot() as running:
            result = run(
                source,
                task.chain,
                limits=rt.settings.limits(),
                threads=operation_threads(rt.settings.imaging_threads, default_threads(), running),
                timeout=rt.settings.operation_timeout_seconds,
            )
    except PixelpipeError as exc:
        if exc.retryable:
            raise
        op = rt.store.complete_operation(task.job_id, task.index, error=exc.to_dict(), read=done)
        return operation_outcome(op)
    put = rt.blobs_for(task.output_container).put(
        task.output_container,
        task.output_blob,
        result.data,
        content_type=result.content_type,
        content_disposition=content_disposition(task.filename),
        metadata={"job": task.job_id, "operation": str(task.index)},
    )
    if put.sha256 is None:  # someone else's blob sits where this output belongs
        conflict = OutputConflict(
            f"{task.output_container}/{task.output_blob} already holds a "
            "file pixelpipe did not write; it was left alone."
        )
        op = rt.store.complete_operation(
            task.job_id, task.index, error=conflict.to_dict(), read=done
        )
        return operation_outcome(op)
    # An earlier attempt of this very operation may have written it (and died before
    # recording it): its bytes stand, even if this attempt's encoding differs.
    output = Output(
        task.output_container,
        task.output_blob,
        task.filename,
        result.format,
        result.content_type,
        result.width,
        result.height,
        put.size,
        put.sha256,
    )
    op = rt.store.complete_operation(task.job_id, task.index, output=output, read=done)
    return operation_outcome(op)


def fail_operation(rt: Runtime, job_id: str, index: int, error: PixelpipeError) -> dict[str, Any]:
    """Record a poisoned operation as failed (unless something completed it first)."""
    try:
        op = rt.store.complete_operation(job_id, index, error=error.to_dict())
    except Exception as exc:  # the job was deleted meanwhile
        log.warning("poison for %s/%s: %s", job_id, index, exc)
        return {"status": "failed", "error": error.to_dict()}
    return operation_outcome(op)


def finalize(rt: Runtime, job_id: str, *, timed_out: bool) -> dict[str, Any]:
    """Write the manifest (the last of the job's files), then make the job terminal, so a
    client that sees a terminal job finds every file; return the result document."""
    job, operations = rt.store.get_with_operations(job_id)
    if job is None:
        return {"id": job_id, "status": "deleted"}
    if not job.status.terminal:
        deadline = OperationTimeout("The job's deadline passed before this operation finished.")
        operations = [
            op
            if op.status.terminal
            else rt.store.complete_operation(job_id, op.index, error=deadline.to_dict(), read=op)
            for op in operations
        ]
        succeeded = sum(1 for op in operations if op.status is OpStatus.SUCCEEDED)
        status = (
            JobStatus.SUCCEEDED
            if succeeded == len(operations)
            else JobStatus.FAILED
            if succeeded == 0
            else JobStatus.PARTIAL
        )
        completed = utcnow()
        # (If this activity dies between the two writes, its retry finds the manifest already
        # there, create-only, and the row records the retry's slightly later time.)
        _write_manifest(rt, job.evolve(status=status, completed_at=completed), operations)
        job = rt.store.finish(job, status, completed_at=completed)
        if timed_out:
            log.info("job %s hit its deadline", job_id)
    else:
        _write_manifest(rt, job, operations)  # a repeated activity: create-only, harmless
    return job_document(rt, job, operations)


def _write_manifest(rt: Runtime, job: Job, operations: list[Operation]) -> None:
    rt.blobs_for(job.output_container).put_json(
        job.output_container, f"{job.output_prefix}manifest.json", manifest(job, operations)
    )


def deliver_job_webhook(rt: Runtime, job_id: str) -> dict[str, Any]:
    """One webhook delivery attempt for a terminal job; raises `Unavailable` while retrying."""
    job, operations = rt.store.get_with_operations(job_id)
    if job is None or not job.webhook_url or not job.status.terminal:
        return {"status": "skipped"}
    if job.webhook and job.webhook.get("status") == "delivered":
        return job.webhook
    try:
        secret = rt.secrets.get(rt.settings.webhook_secret_name).value
    except SecretError as exc:  # never send unsigned: record why and stop retrying
        record = {
            "url": job.webhook_url,
            "status": "failed",
            "lastError": exc.message,
            "attempts": int((job.webhook or {}).get("attempts", 0)),
        }
        rt.store.update_job(job, webhook=record)
        return record
    record = deliver(
        job.webhook_url,
        job_document(rt, job, operations),
        secret,
        allow_private=rt.settings.webhook_allow_private,
        timeout=rt.settings.webhook_timeout_seconds,
        previous=job.webhook,
    )
    rt.store.update_job(job, webhook=record)
    if record["status"] == "retrying":
        raise Unavailable(f"Webhook delivery failed: {record['lastError']}.")
    return record


def manifest(job: Job, operations: list[Operation]) -> dict[str, Any]:
    """The manifest written next to the outputs: deterministic for a terminal job."""
    entries = []
    for op in operations:
        entry = operation_entry(op)
        if op.output is not None:
            blob = op.output.blob
            entry["output"] = {
                "blob": blob.rsplit("/", 1)[-1],
                "format": op.output.format,
                "contentType": op.output.content_type,
                "width": op.output.width,
                "height": op.output.height,
                "bytes": op.output.bytes,
                "sha256": op.output.sha256,
            }
        entries.append(entry)
    return {
        "job": job.id,
        "status": job.status.value,
        "createdAt": iso(job.created_at),
        "completedAt": iso(job.completed_at),
        "source": job.source,
        "operations": entries,
    }
