"""The job model: a job, its operations and their outputs, and how they map to table rows.

A job's rows share one partition (the job id) in table `jobs`: the `job` row and one
`op-NNNN` row per operation. Workers update only their own operation's row, so progress
reads never contend with writes, and one partition query returns the whole job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.imaging.pipeline import Chain

__all__ = [
    "JOB_ID",
    "Job",
    "JobStatus",
    "OpStatus",
    "Operation",
    "Output",
    "iso",
    "utcnow",
]

JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _stored(moment: datetime | None) -> str | None:
    """Times in table rows keep milliseconds (the owner index orders by them)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds") if moment else None


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


class JobStatus(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"  # shown as "queued" with "awaitingUpload": true
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED)


class OpStatus(StrEnum):
    QUEUED = "queued"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self is not OpStatus.QUEUED


@dataclass(frozen=True)
class Output:
    container: str
    blob: str
    filename: str  # what a download is called (Content-Disposition)
    format: str
    content_type: str
    width: int
    height: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "blob": self.blob,
            "filename": self.filename,
            "format": self.format,
            "contentType": self.content_type,
            "width": self.width,
            "height": self.height,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Output:
        return cls(
            data["container"],
            data["blob"],
            data["filename"],
            data["format"],
            data["contentType"],
            int(data["width"]),
            int(data["height"]),
            int(data["bytes"]),
            data["sha256"],
        )


@dataclass(frozen=True)
class Operation:
    job_id: str
    index: int
    name: str
    op: str
    chain: Chain
    status: OpStatus = OpStatus.QUEUED
    output: Output | None = None
    error: dict[str, Any] | None = None
    updated_at: datetime | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def row_key(self) -> str:
        return f"op-{self.index:04d}"

    def to_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": self.job_id,
            "RowKey": self.row_key,
            "Index": self.index,
            "Name": self.name,
            "Op": self.op,
            "Chain": json.dumps(self.chain.to_dict()),
            "Status": self.status.value,
            "Output": json.dumps(self.output.to_dict()) if self.output else None,
            "Error": json.dumps(self.error) if self.error else None,
            "UpdatedAt": _stored(self.updated_at),
        }

    @classmethod
    def from_entity(cls, entity: Any) -> Operation:
        output = entity.get("Output")
        error = entity.get("Error")
        return cls(
            job_id=entity["PartitionKey"],
            index=int(entity["Index"]),
            name=entity["Name"],
            op=entity["Op"],
            chain=Chain.from_dict(json.loads(entity["Chain"])),
            status=OpStatus(entity["Status"]),
            output=Output.from_dict(json.loads(output)) if output else None,
            error=json.loads(error) if error else None,
            updated_at=_parse_time(entity.get("UpdatedAt")),
            etag=getattr(entity, "metadata", {}).get("etag"),
        )


@dataclass(frozen=True)
class Job:
    id: str
    owner: str  # principal key: "<tid>/<oid>" or "sub/<sub>"
    status: JobStatus
    created_at: datetime
    total: int
    source_container: str
    source_blob: str
    output_container: str
    output_prefix: str  # outputs are <prefix><name>.<ext>, manifest last
    filename: str  # the upload's (sanitised) name, for download names
    origin: str  # "http", "upload" or "blob"
    source: dict[str, Any] | None = None  # format, width, height, bytes (once known)
    spec: dict[str, Any] | None = None  # JobSpec.to_dict()
    webhook_url: str | None = None
    completed_at: datetime | None = None
    dispatched: bool = False
    error: dict[str, Any] | None = None  # why the whole job failed (upload refused, ...)
    webhook: dict[str, Any] | None = None  # the delivery record
    etag: str | None = field(default=None, compare=False)

    def to_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": self.id,
            "RowKey": "job",
            "Owner": self.owner,
            "Status": self.status.value,
            "CreatedAt": _stored(self.created_at),
            "CompletedAt": _stored(self.completed_at),
            "Total": self.total,
            "SourceContainer": self.source_container,
            "SourceBlob": self.source_blob,
            "OutputContainer": self.output_container,
            "OutputPrefix": self.output_prefix,
            "Filename": self.filename,
            "Origin": self.origin,
            "Source": json.dumps(self.source) if self.source else None,
            "Spec": json.dumps(self.spec) if self.spec else None,
            "WebhookUrl": self.webhook_url,
            "Dispatched": self.dispatched,
            "Error": json.dumps(self.error) if self.error else None,
            "Webhook": json.dumps(self.webhook) if self.webhook else None,
        }

    @classmethod
    def from_entity(cls, entity: Any) -> Job:
        def loads(key: str) -> Any:
            value = entity.get(key)
            return json.loads(value) if value else None

        created = _parse_time(entity["CreatedAt"])
        assert created is not None
        return cls(
            id=entity["PartitionKey"],
            owner=entity["Owner"],
            status=JobStatus(entity["Status"]),
            created_at=created,
            total=int(entity["Total"]),
            source_container=entity["SourceContainer"],
            source_blob=entity["SourceBlob"],
            output_container=entity["OutputContainer"],
            output_prefix=entity["OutputPrefix"],
            filename=entity["Filename"],
            origin=entity["Origin"],
            source=loads("Source"),
            spec=loads("Spec"),
            webhook_url=entity.get("WebhookUrl"),
            completed_at=_parse_time(entity.get("CompletedAt")),
            dispatched=bool(entity.get("Dispatched")),
            error=loads("Error"),
            webhook=loads("Webhook"),
            etag=getattr(entity, "metadata", {}).get("etag"),
        )

    def evolve(self, **changes: Any) -> Job:
        return replace(self, **changes)
