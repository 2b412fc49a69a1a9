"""What clients see of orchestration instances: the status record and the service's rules.

The rules (Durable extension with the Azure Storage provider, as the Python client observes
them through the HTTP management API):

- `start_new` with the id of a Pending or Running instance fails ("An Orchestration instance
  with the status Running already exists."); the id of a Completed, Failed or Terminated
  instance starts it afresh: new execution, history reset, created time now.
- `raise_event` to an unknown id is a 404 (the client raises "No instance with ID ... found."),
  to a Completed/Failed/Terminated one a 410 ("Instance with ID ... is gone: either completed
  or failed"). An event raised to a Pending or Running instance is kept in its history and
  delivered when the orchestrator waits for it.
- `terminate` of an unknown id is a 404; of a finished instance a 410, which the Python client
  ignores.
- A status reports `output` as the orchestrator's return value (Completed), the failure text
  (Failed) or the termination reason (Terminated); `customStatus` as last set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devhost.durable.replay import RuntimeStatus

__all__ = [
    "FINISHED",
    "InstanceExistsError",
    "InstanceGoneError",
    "InstanceNotFoundError",
    "InstanceStatus",
    "ensure_can_raise_event",
    "ensure_can_start",
    "ensure_can_terminate",
]

FINISHED = frozenset({RuntimeStatus.COMPLETED, RuntimeStatus.FAILED, RuntimeStatus.TERMINATED})


class InstanceExistsError(Exception):
    """`start_new` with the id of an instance that is Pending or Running."""


class InstanceNotFoundError(LookupError):
    """No instance with that id (HTTP 404)."""

    http_status = 404


class InstanceGoneError(Exception):
    """The instance already finished (HTTP 410)."""

    http_status = 410


def ensure_can_start(instance_id: str, status: RuntimeStatus | None) -> None:
    """Raise unless an instance in `status` (None: none exists) may be (re)started."""
    if status is not None and status not in FINISHED:
        raise InstanceExistsError(
            f"An Orchestration instance with the status {status} already exists "
            f"(instance ID {instance_id})."
        )


def ensure_can_raise_event(instance_id: str, status: RuntimeStatus | None) -> None:
    """Raise unless an instance in `status` accepts external events."""
    if status is None:
        raise InstanceNotFoundError(f"No instance with ID {instance_id} found.")
    if status in FINISHED:
        raise InstanceGoneError(
            f"Instance with ID {instance_id} is gone: either completed or failed"
        )


def ensure_can_terminate(instance_id: str, status: RuntimeStatus | None) -> None:
    """Raise unless an instance in `status` can be terminated."""
    if status is None:
        raise InstanceNotFoundError(f"No instance with ID '{instance_id}' found.")
    if status in FINISHED:
        raise InstanceGoneError(f"Instance with ID {instance_id} is not running")


@dataclass(frozen=True)
class InstanceStatus:
    """An instance's status, as `DurableOrchestrationClient.get_status` reports it."""

    name: str
    instance_id: str
    runtime_status: RuntimeStatus
    input: Any
    output: Any
    custom_status: Any
    created_time: datetime
    last_updated_time: datetime

    def to_json(self) -> dict[str, Any]:
        """The status API's JSON body (what `DurableOrchestrationStatus.from_json` reads)."""
        return {
            "name": self.name,
            "instanceId": self.instance_id,
            "runtimeStatus": str(self.runtime_status),
            "input": self.input,
            "customStatus": self.custom_status,
            "output": self.output,
            "createdTime": _status_time(self.created_time),
            "lastUpdatedTime": _status_time(self.last_updated_time),
        }


def _status_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
