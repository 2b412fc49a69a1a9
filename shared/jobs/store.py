"""Job rows in Table Storage: creation, progress, terminal states, the owner index, idempotency.

Every state change that must happen at most once is conditional (ETag or create-only):
terminal states never change again, an operation is completed once, an idempotency key maps
to one job. Table `jobindex` holds two kinds of partitions:

* `owner-<hash>`: one row per job, RowKey `<inverted creation ms>-<job id>`, so a plain
  partition scan lists a principal's jobs newest first; the cursor is the last RowKey.
* `idem-<hash>`: RowKey = hash of an Idempotency-Key, pointing at the job it created.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.jobs.model import Job, JobStatus, Operation, OpStatus, iso, utcnow
from shared.storage.clients import JOB_INDEX_TABLE, JOBS_TABLE, StorageClients

__all__ = ["JobExists", "JobStore", "Page", "owner_hash"]

MAX_MS = 10**13  # inverted timestamps sort newest first until the year 2286


class JobExists(Exception):
    """A job with this id was already created (create is idempotent at a higher level)."""


def owner_hash(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None


class JobStore:
    def __init__(self, clients: StorageClients) -> None:
        self.jobs: TableClient = clients.table(JOBS_TABLE)
        self.index: TableClient = clients.table(JOB_INDEX_TABLE)

    # -- create / read ------------------------------------------------------------------------

    def create(self, job: Job, operations: Iterable[Operation]) -> None:
        """Create the job row and its operation rows in one transaction, plus its index row."""
        batch: list[Any] = [("create", job.to_entity())]
        batch.extend(("create", op.to_entity()) for op in operations)
        try:
            self.jobs.submit_transaction(batch)
        except TableTransactionError as exc:
            if getattr(exc, "error_code", "") == "EntityAlreadyExists" or "AlreadyExists" in str(
                exc
            ):
                raise JobExists(job.id) from None
            raise
        self._upsert_index(job)

    def _upsert_index(self, job: Job) -> None:
        inverted = MAX_MS - int(job.created_at.timestamp() * 1000)
        self.index.upsert_entity(
            {
                "PartitionKey": f"owner-{owner_hash(job.owner)}",
                "RowKey": f"{inverted:013d}-{job.id}",
                "JobId": job.id,
            }
        )

    def get(self, job_id: str) -> Job | None:
        try:
            return Job.from_entity(self.jobs.get_entity(job_id, "job"))
        except ResourceNotFoundError:
            return None

    def get_with_operations(self, job_id: str) -> tuple[Job | None, list[Operation]]:
        """The job row and all its operation rows, in one partition query."""
        job: Job | None = None
        operations: list[Operation] = []
        for entity in self.jobs.query_entities("PartitionKey eq @pk", parameters={"pk": job_id}):
            if entity["RowKey"] == "job":
                job = Job.from_entity(entity)
            elif entity["RowKey"].startswith("op-"):
                operations.append(Operation.from_entity(entity))
        operations.sort(key=lambda op: op.index)
        return job, operations

    def get_operation(self, job_id: str, index: int) -> Operation | None:
        try:
            return Operation.from_entity(self.jobs.get_entity(job_id, f"op-{index:04d}"))
        except ResourceNotFoundError:
            return None

    # -- state changes -------------------------------------------------------------------------

    def update_job(self, job: Job, **changes: Any) -> Job:
        """Merge changes into the job row, if it has not changed since `job` was read."""
        updated = job.evolve(**changes)
        self.jobs.update_entity(
            updated.to_entity(),
            mode=UpdateMode.MERGE,
            etag=job.etag,
            match_condition=MatchConditions.IfNotModified,
        )
        return self.get(job.id) or updated

    def mark_dispatched(self, job: Job) -> Job:
        status = JobStatus.RUNNING if not job.status.terminal else job.status
        return self.update_job(job, dispatched=True, status=status)

    def complete_operation(
        self,
        job_id: str,
        index: int,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
        read: Operation | None = None,
    ) -> Operation:
        """Record an operation's outcome once; a second completion returns the first one.

        `read` is the row as the caller last read it (its ETag saves a round trip)."""
        for attempt in range(5):
            current = (
                read if attempt == 0 and read is not None else self.get_operation(job_id, index)
            )
            if current is None:
                raise ResourceNotFoundError(f"operation {job_id}/{index} does not exist")
            if current.status.terminal:
                return current
            done = Operation(
                current.job_id,
                current.index,
                current.name,
                current.op,
                current.chain,
                OpStatus.FAILED if error else OpStatus.SUCCEEDED,
                output,
                error,
                utcnow(),
            )
            try:
                self.jobs.update_entity(
                    done.to_entity(),
                    mode=UpdateMode.MERGE,
                    etag=current.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
                return done
            except ResourceModifiedError:
                continue
        raise RuntimeError(f"operation {job_id}/{index} kept changing")

    def finish(
        self, job: Job, status: JobStatus, *, completed_at: datetime | None = None, **changes: Any
    ) -> Job:
        """Move a job to a terminal state once; a terminal job is returned unchanged."""
        current = job
        completed_at = completed_at or utcnow()
        for _ in range(5):
            if current.status.terminal:
                return current
            try:
                return self.update_job(current, status=status, completed_at=completed_at, **changes)
            except ResourceModifiedError:
                fresh = self.get(job.id)
                if fresh is None:
                    raise
                current = fresh
        raise RuntimeError(f"job {job.id} kept changing")

    def delete(self, job: Job) -> None:
        _, operations = self.get_with_operations(job.id)
        for op in operations:
            self._delete_entity(self.jobs, job.id, op.row_key)
        self._delete_entity(self.jobs, job.id, "job")
        inverted = MAX_MS - int(job.created_at.timestamp() * 1000)
        self._delete_entity(
            self.index, f"owner-{owner_hash(job.owner)}", f"{inverted:013d}-{job.id}"
        )

    @staticmethod
    def _delete_entity(table: TableClient, pk: str, rk: str) -> None:
        try:
            table.delete_entity(pk, rk)
        except ResourceNotFoundError:
            pass

    # -- listing -------------------------------------------------------------------------------

    def list_for(self, owner: str, *, limit: int, cursor: str | None = None) -> Page:
        flt = "PartitionKey eq @pk"
        params: dict[str, Any] = {"pk": f"owner-{owner_hash(owner)}"}
        if cursor:
            flt += " and RowKey gt @after"
            params["after"] = cursor
        rows: list[Any] = []
        for entity in self.index.query_entities(flt, parameters=params, results_per_page=limit + 1):
            rows.append(entity)
            if len(rows) > limit:
                break
        more = len(rows) > limit
        rows = rows[:limit]
        jobs = [job for job in (self.get(row["JobId"]) for row in rows) if job is not None]
        return Page(jobs, rows[-1]["RowKey"] if more and rows else None)

    # -- idempotency ---------------------------------------------------------------------------

    def claim_idempotency_key(
        self, owner: str, key: str, job_id: str, *, window: timedelta, now: datetime | None = None
    ) -> str:
        """The job id this key stands for: `job_id` if the key is new (or expired), else the
        job it already created within `window`."""
        now = now or utcnow()
        pk = f"idem-{owner_hash(owner)}"
        rk = hashlib.sha256(key.encode()).hexdigest()[:40]
        entity = {"PartitionKey": pk, "RowKey": rk, "JobId": job_id, "ClaimedAt": iso(now)}
        for _ in range(5):
            try:
                self.index.create_entity(entity)
                return job_id
            except ResourceExistsError:
                pass
            try:
                existing = self.index.get_entity(pk, rk)
            except ResourceNotFoundError:
                continue
            claimed = datetime.fromisoformat(existing["ClaimedAt"].replace("Z", "+00:00"))
            if now - claimed < window:
                return str(existing["JobId"])
            try:
                self.index.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=existing.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return job_id
            except (ResourceModifiedError, HttpResponseError):
                continue
        raise RuntimeError("idempotency key kept changing")
