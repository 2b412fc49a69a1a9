"""Durable Task history events, in the JSON shape the Durable extension sends to the Python SDK.

An orchestration's state is nothing but its history: a list of events, one JSON object each,
as the Durable Task Framework (DTFx) serialises its `HistoryEvent` classes (PascalCase field
names). Every event carries

    {"EventType": <int>, "EventId": <int>, "IsPlayed": <bool>, "Timestamp": "<ISO 8601, Z>"}

plus the fields of its type (checked against azure-functions-durable 1.7.0, which reads them
as attributes of `models.history.HistoryEvent`):

    type                     fields                                   read by the SDK
    0  ExecutionStarted      Name, Version, Input, OrchestrationInstance  Version (must exist)
    1  ExecutionCompleted    OrchestrationStatus, Result, FailureDetails  -
    3  ExecutionTerminated   Input (the reason)                       -
    4  TaskScheduled         Name, Version, Input                     -
    5  TaskCompleted         TaskScheduledId, Result                  TaskScheduledId, Result
    6  TaskFailed            TaskScheduledId, Reason, Details         all three
    10 TimerCreated          FireAt                                   -
    11 TimerFired            TimerId, FireAt                          TimerId
    12 OrchestratorStarted   -                                        Timestamp
    13 OrchestratorCompleted -                                        -
    15 EventRaised           Name, Input                              Name, Input

`EventId` is the orchestration's *sequence number* for the events that start work
(TaskScheduled, TimerCreated) and for ExecutionCompleted; the events that report the work done
point back at it (TaskCompleted/TaskFailed.TaskScheduledId, TimerFired.TimerId). All other
events have `EventId` -1. `Result`, `Input` and event payloads are JSON *text* (the SDK
`json.loads` them); `Reason`/`Details` are plain strings that the SDK turns into
`Exception(f"{Reason} \\n {Details}")` inside the orchestrator.

`IsPlayed` is true for events of earlier episodes and false for the new ones; the SDK combines
it with the position of the last OrchestratorStarted to compute `context.is_replaying`. The
timestamps of the OrchestratorStarted events are what `context.current_utc_datetime` returns.

The remaining types (sub-orchestrations 7-9, EventSent 14, ContinueAsNew 16, GenericEvent 17,
HistoryState 18, ExecutionSuspended/Resumed 19/20) are listed for completeness; devhost does
not produce them.

`TaskScheduled.Input` and `ExecutionStarted.Input` hold the input as the SDK produced it (JSON
text). DTFx itself stores them differently (a parameter array, a doubly encoded string), but
the SDK never reads either field, so nothing can observe the difference.
"""

from __future__ import annotations

import enum
import json
import traceback
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "NO_EVENT_ID",
    "EventType",
    "HistoryEvent",
    "OrchestrationStatus",
    "activity_failure",
    "event_raised",
    "execution_completed",
    "execution_started",
    "execution_terminated",
    "iso",
    "orchestrator_completed",
    "orchestrator_started",
    "parse_iso",
    "task_completed",
    "task_failed",
    "task_scheduled",
    "timer_created",
    "timer_fired",
]

HistoryEvent = dict[str, Any]
"""One history event: a JSON object (see the module docstring for its fields)."""

NO_EVENT_ID = -1

_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # the SDK's own DATETIME_STRING_FORMAT

_RPC_EXCEPTION = "Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException"


class EventType(enum.IntEnum):
    """DTFx `EventType`, the `EventType` field of every history event."""

    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_FAILED = 2
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    SUB_ORCHESTRATION_INSTANCE_CREATED = 7
    SUB_ORCHESTRATION_INSTANCE_COMPLETED = 8
    SUB_ORCHESTRATION_INSTANCE_FAILED = 9
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_SENT = 14
    EVENT_RAISED = 15
    CONTINUE_AS_NEW = 16
    GENERIC_EVENT = 17
    HISTORY_STATE = 18
    EXECUTION_SUSPENDED = 19
    EXECUTION_RESUMED = 20


class OrchestrationStatus(enum.IntEnum):
    """DTFx `OrchestrationStatus`, the `OrchestrationStatus` field of ExecutionCompleted."""

    RUNNING = 0
    COMPLETED = 1
    CONTINUED_AS_NEW = 2
    FAILED = 3
    TERMINATED = 5
    PENDING = 6


def iso(moment: datetime) -> str:
    """`moment` (timezone-aware) as the UTC timestamp text used in history events."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: history timestamps are UTC")
    return moment.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)


def parse_iso(text: str) -> datetime:
    """A timestamp written by `iso` (or an SDK `fireAt`) as an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)


def _event(
    event_type: EventType, timestamp: datetime, event_id: int = NO_EVENT_ID, **fields: Any
) -> HistoryEvent:
    return {
        "EventType": int(event_type),
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": iso(timestamp),
        **fields,
    }


def orchestrator_started(timestamp: datetime) -> HistoryEvent:
    """Opens every episode; its timestamp becomes `context.current_utc_datetime`."""
    return _event(EventType.ORCHESTRATOR_STARTED, timestamp)


def orchestrator_completed(timestamp: datetime) -> HistoryEvent:
    """Closes every episode that did not continue as new."""
    return _event(EventType.ORCHESTRATOR_COMPLETED, timestamp)


def execution_started(
    *, name: str, input_json: str | None, instance_id: str, execution_id: str, timestamp: datetime
) -> HistoryEvent:
    """Starts a generation of an instance (a new instance, a restart or a continue-as-new)."""
    return _event(
        EventType.EXECUTION_STARTED,
        timestamp,
        Name=name,
        Version="",
        Input=input_json,
        ParentInstance=None,
        Tags=None,
        OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
    )


def execution_completed(
    *, status: OrchestrationStatus, result: str | None, event_id: int, timestamp: datetime
) -> HistoryEvent:
    """Ends a generation: `result` is the output JSON text, or the failure/termination text."""
    return _event(
        EventType.EXECUTION_COMPLETED,
        timestamp,
        event_id,
        OrchestrationStatus=int(status),
        Result=result,
        FailureDetails=None,
    )


def execution_terminated(reason: str, timestamp: datetime) -> HistoryEvent:
    """The message `terminate` sends; the instance ends Terminated with `reason` as output."""
    return _event(EventType.EXECUTION_TERMINATED, timestamp, Input=reason)


def task_scheduled(
    task_id: int, name: str, input_json: str | None, timestamp: datetime
) -> HistoryEvent:
    """Activity `name` was scheduled with sequence number `task_id`."""
    return _event(
        EventType.TASK_SCHEDULED, timestamp, task_id, Name=name, Version="", Input=input_json
    )


def task_completed(
    task_scheduled_id: int, result_json: str | None, timestamp: datetime
) -> HistoryEvent:
    """The activity scheduled as `task_scheduled_id` returned `result_json`."""
    return _event(
        EventType.TASK_COMPLETED, timestamp, TaskScheduledId=task_scheduled_id, Result=result_json
    )


def task_failed(
    task_scheduled_id: int, reason: str, details: str | None, timestamp: datetime
) -> HistoryEvent:
    """The activity scheduled as `task_scheduled_id` raised (see `activity_failure`)."""
    return _event(
        EventType.TASK_FAILED,
        timestamp,
        TaskScheduledId=task_scheduled_id,
        Reason=reason,
        Details=details,
        FailureDetails=None,
    )


def activity_failure(activity_name: str, exc: BaseException) -> tuple[str, str]:
    """`(Reason, Details)` of the TaskFailed event for an activity that raised `exc`.

    Modelled on the real host: the Python worker reports the exception as an RpcException
    whose message is `Result: Failure\\nException: <Type>: <message>\\nStack: <traceback>`;
    the extension's TaskActivityShim turns that into the reason
    `Activity function '<name>' failed: <that message>` and serialises the exception
    (Newtonsoft JSON, abridged here to its informative fields) as the details.
    """
    remote_message = f"{type(exc).__name__}: {exc}"
    stack = "".join(traceback.format_tb(exc.__traceback__))
    message = f"Result: Failure\nException: {remote_message}\nStack: {stack}"
    details = json.dumps(
        {
            "$type": f"{_RPC_EXCEPTION}, Microsoft.Azure.WebJobs.Script",
            "ClassName": _RPC_EXCEPTION,
            "Message": message,
            "RemoteMessage": remote_message,
            "RemoteStackTrace": stack,
        },
        separators=(",", ":"),
    )
    return f"Activity function '{activity_name}' failed: {message}", details


def timer_created(timer_id: int, fire_at: datetime, timestamp: datetime) -> HistoryEvent:
    """A durable timer with sequence number `timer_id` was set for `fire_at`."""
    return _event(EventType.TIMER_CREATED, timestamp, timer_id, FireAt=iso(fire_at))


def timer_fired(timer_id: int, fire_at: datetime, timestamp: datetime) -> HistoryEvent:
    """The timer created as `timer_id` fired."""
    return _event(EventType.TIMER_FIRED, timestamp, TimerId=timer_id, FireAt=iso(fire_at))


def event_raised(name: str, input_json: str | None, timestamp: datetime) -> HistoryEvent:
    """External event `name` arrived with payload `input_json` (JSON text)."""
    return _event(EventType.EVENT_RAISED, timestamp, Name=name, Input=input_json)
