"""A persistent Durable Functions backend over Azure Storage (Azurite): the devhost's twin of the
Durable extension's Azure Storage provider, in miniature.

`AzuriteDurableHost` does what `memory.MemoryHost` does - client operations with the service's
rules, episodes run by `replay.run_episode`, activities run by `registry.invoke_activity` - but
keeps everything in a storage account, so any number of threads and processes can share the
work and a restarted devhost (or a restarted Azurite with a data directory) carries on where
the last one stopped.

Resources (for task hub `<hub>`: 3-45 letters and digits, starting with a letter):

    table      <hub>Instances        one row per instance (PartitionKey = instance id, RowKey ""):
                                     Name, ExecutionId, RuntimeStatus, CreatedTime,
                                     LastUpdatedTime, Input/Output/CustomStatus (JSON text, when
                                     under 30,000 characters; else listed in LargeFields and kept
                                     in the state only), FailureDetails, State or StateBlob,
                                     LeaseOwner, LeaseUntil
                                     State: the state of the execution (history, input,
                                     output, custom status, recently applied message ids) as
                                     JSON, when it is under 30,000 characters: a job's whole
                                     state is then one row, read and written in one request
    container  <hub>-durable         instances/<quoted id>/<execution>/<n>.json: a state too
                                     large for the row (StateBlob names it);
                                     messages/<uuid>.json: bodies of queue messages over 32 KB
    queue      <hub>-control         messages to orchestrations: ExecutionStarted, EventRaised,
                                     ExecutionTerminated, TaskCompleted/TaskFailed, TimerFired
    queue      <hub>-workitems       activities to run

Every queue message is a JSON envelope `{"mid", "instanceId", "executionId", "sentAt", ...}`
with a message id (`mid`) the host assigns (not the queue's, so a re-sent copy is recognised);
control messages carry a history `event`, work items `taskId`, `name` and `input`.

Client operations
    `start_new` sends ExecutionStarted first and writes the Pending row second: a crash in
    between leaves a start message that the work loop turns into the instance itself (it
    creates the row when there is none, or restarts a finished instance when the message is
    newer than the row). If the row changed under `start_new` because a worker is already
    applying this very start message, `start_new` waits for that episode's commit instead of
    reporting a conflict with itself. `raise_event`/`terminate` read the row (404/410 rules
    of `instances`) and send a message tagged with the current execution id. Nothing runs
    until a work loop takes the messages: an instance stays Pending until then, and events
    raised meanwhile reach its first episode, as on Azure.

The work loop (`process_orchestrations`, `process_activities`; `run_until` loops both)
    Control messages are received invisible for `lease_seconds` and grouped by instance. For
    each instance: read the row (leased by another worker: defer the messages by
    `defer_seconds`), read the state blob, sort the messages out (below), take the lease
    (an ETag-guarded merge of LeaseOwner/LeaseUntil into the row), run the episode
    (ContinueAsNew runs the next generation at once), then

        1. dispatch: send the episode's activities to the work-item queue and its timers as
           TimerFired control messages made invisible until their fire time (whole seconds,
           rounded up; a timer further out than the queue allows is re-sent when it surfaces);
        2. write the new state to a NEW blob (unless it fits in the row: then it is part
           of the commit's write);
        3. commit: replace the row, ETag-guarded by the lease, pointing to the new blob with
           the new status and the lease cleared - the one write that makes the episode count;
        4. delete the previous state blob, then the consumed messages.

    A crash before 3 leaves the instance's state as it was: the messages reappear after the
    lease and the episode runs again, dispatching the same work again (activities run at
    least once, as on Azure), and the duplicate results and timers are dropped (below). A
    crash after 3 leaves messages whose ids are already in the state: dropped when they
    reappear. A lost lease (the ETag moved) abandons the episode the same way. Dispatching
    after the commit instead would lose work on a crash in between; writing the state in
    place would let a crash leave a history that the row does not describe.

    Sorting out a batch (the dedupe that makes redelivery harmless):
    - ExecutionStarted starts the instance when there is no row, when the row is the Pending
      row `start_new` wrote for this execution, or when the row's execution is finished and
      older than the message (a restart whose row write was lost). Any other start message
      is a duplicate or lost a race: dropped.
    - Other messages for another execution than the row's (over, superseded by a restart or
      a ContinueAsNew) or for a finished instance are dropped, as DTFx does; so are messages
      whose `mid` the state lists as applied (the last 2,000 are kept).
    - TaskCompleted/TaskFailed whose TaskScheduled is not in the history (the result of
      an episode that never committed: it will be dispatched again) or that already completed
      are dropped; TimerFired likewise, and also when its FireAt differs from the recorded
      TimerCreated (a timer set by an episode that was run again later).
    - Messages for an instance whose ExecutionStarted has not been applied yet (an event
      raised right after `start_new`, taken before the start message) are deferred.

    Work items are received invisible for `activity_lease_seconds`, renewed every third of
    that while the activity runs, so a worker killed mid-activity leaves the item to another
    worker once the lease runs out. The result goes to the control queue with an id derived
    from the work item's (a rerun's result is a recognised duplicate), then the item is
    deleted. After `max_activity_deliveries` deliveries the task fails instead of running
    again (a poison work item).

Only one episode per instance runs at a time: the lease is taken with an ETag-guarded write
and cleared by the commit; a worker that finds the row leased (LeaseUntil in the future)
defers its messages. An episode that outlives `lease_seconds` can lose its lease (its commit
then fails and it is abandoned), so `lease_seconds` must exceed the longest episode; a
worker that dies holding a lease delays the instance by at most `lease_seconds`. Lease
times come from the hosts' clocks: processes sharing a hub must share a clock (one machine).

Call `process_orchestrations`/`process_activities` from plain threads, not from a thread
running an event loop (`registry.invoke_activity` runs async activities with `asyncio.run`).

What differs from the real Azure Storage provider: one control queue (no partitions and no
partition leases: a lease per instance instead), the history as one JSON text per execution
rather than a History table, no extended sessions or in-memory instance cache (every
episode reads its state), no suspend/resume/rewind, timers only to whole seconds, activity
poison handling by delivery count, and the history stores inputs as the SDK produced them
(see `history`). Events raised to an instance whose start message is still queued are
deferred rather than buffered in the instance; the outcome is the same.

Limitations: a purged instance whose start message is redelivered within its lease (a crash
between commit and delete, then a purge within seconds) would start again; a `start_new`
that loses a race for the same id removes its start message best-effort only.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import QueueClient, QueueMessage

from devhost.durable.history import (
    EventType,
    HistoryEvent,
    OrchestrationStatus,
    activity_failure,
    event_raised,
    execution_completed,
    execution_started,
    execution_terminated,
    iso,
    orchestrator_completed,
    parse_iso,
    task_completed,
    task_failed,
    timer_fired,
)
from devhost.durable.instances import (
    FINISHED,
    InstanceExistsError,
    InstanceNotFoundError,
    InstanceStatus,
    ensure_can_raise_event,
    ensure_can_start,
    ensure_can_terminate,
)
from devhost.durable.registry import ActivityFunction, AppFunctions, invoke_activity
from devhost.durable.replay import (
    Decision,
    OrchestrationState,
    OrchestratorFunction,
    RuntimeStatus,
    build_request,
    run_episode,
)

__all__ = [
    "DEFAULT_HUB",
    "AzuriteDurableHost",
    "HubNames",
    "InvalidInstanceIdError",
    "UnknownOrchestratorError",
    "display_history",
    "utc_now",
    "validate_hub",
    "validate_instance_id",
]

logger = logging.getLogger(__name__)

DEFAULT_HUB = "pixelpipe"

_HUB_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9]{2,44}")
_MAX_INSTANCE_ID = 256
_INVALID_ID_CHARS = frozenset("/\\#?")
_ROW_KEY = ""
_MAX_ROW_TEXT = 30_000  # characters: a table string property holds 64 KiB of UTF-16
_MAX_MESSAGE_BYTES = 32 * 1024  # queue messages hold 64 KiB; the rest goes to a blob
_MAX_VISIBILITY = 7 * 24 * 3600 - 3600  # the queue's limit is 7 days
_APPLIED_KEPT = 2000
_TIMER_EARLY = timedelta(milliseconds=500)
_NOT_LEASED = datetime(2000, 1, 1, tzinfo=UTC)
_RECEIVE_LIMIT = 32  # messages per queue request
_MAX_GENERATIONS = 1000  # ContinueAsNew generations run in one work item


def utc_now() -> datetime:
    """The default clock: the current UTC time."""
    return datetime.now(UTC)


class UnknownOrchestratorError(ValueError):
    """`start_new` named a function that is not an orchestrator of the app (HTTP 400)."""


class InvalidInstanceIdError(ValueError):
    """An instance id the service would reject (HTTP 400)."""


def validate_hub(hub: str) -> str:
    """`hub` if it is a valid task hub name (3-45 letters and digits, a letter first)."""
    if not _HUB_PATTERN.fullmatch(hub):
        raise ValueError(
            f"invalid task hub name {hub!r}: use 3-45 letters and digits, starting with a letter"
        )
    return hub


def validate_instance_id(instance_id: str) -> str:
    """`instance_id` if the Durable extension would accept it (and Table storage can key it)."""
    if not instance_id:
        raise InvalidInstanceIdError("Orchestration instance ids must not be empty.")
    if len(instance_id) > _MAX_INSTANCE_ID:
        raise InvalidInstanceIdError(
            f"Instance ID lengths must not exceed {_MAX_INSTANCE_ID} characters."
        )
    if instance_id.startswith("@"):
        raise InvalidInstanceIdError("Orchestration instance ids must not start with @.")
    if any(c in _INVALID_ID_CHARS or ord(c) < 32 or 127 <= ord(c) < 160 for c in instance_id):
        raise InvalidInstanceIdError(
            "Orchestration instance ids must not contain /, \\, #, ?, or control characters."
        )
    return instance_id


@dataclass(frozen=True)
class HubNames:
    """The storage resources of a task hub."""

    hub: str

    @property
    def table(self) -> str:
        return f"{self.hub}Instances"

    @property
    def container(self) -> str:
        return f"{self.hub.lower()}-durable"

    @property
    def control_queue(self) -> str:
        return f"{self.hub.lower()}-control"

    @property
    def workitem_queue(self) -> str:
        return f"{self.hub.lower()}-workitems"


# -- what is stored --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """An instance row as read (large JSON fields are None here: see `large`)."""

    instance_id: str
    name: str
    execution_id: str
    status: RuntimeStatus
    created: datetime
    updated: datetime
    input: str | None
    output: str | None
    custom_status: str | None
    large: frozenset[str]
    failure_details: str | None
    state_blob: str
    state_inline: str | None  # the state's JSON when it fits in the row (no blob then)
    lease_owner: str
    lease_until: datetime
    etag: str

    @classmethod
    def of(cls, entity: Mapping[str, Any], etag: str) -> _Row:
        large = entity.get("LargeFields") or ""
        return cls(
            instance_id=entity["PartitionKey"],
            name=entity["Name"],
            execution_id=entity["ExecutionId"],
            status=RuntimeStatus(entity["RuntimeStatus"]),
            created=_aware(entity["CreatedTime"]),
            updated=_aware(entity["LastUpdatedTime"]),
            input=entity.get("Input"),
            output=entity.get("Output"),
            custom_status=entity.get("CustomStatus"),
            large=frozenset(large.split(",")) - {""},
            failure_details=entity.get("FailureDetails"),
            state_blob=entity.get("StateBlob") or "",
            state_inline=entity.get("State") or None,
            lease_owner=entity.get("LeaseOwner") or "",
            lease_until=_aware(entity.get("LeaseUntil") or _NOT_LEASED),
            etag=etag,
        )

    def leased_at(self, now: datetime) -> bool:
        return bool(self.lease_owner) and self.lease_until > now

    @property
    def has_state(self) -> bool:
        return bool(self.state_blob or self.state_inline)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _row_entity(
    *,
    instance_id: str,
    name: str,
    execution_id: str,
    status: RuntimeStatus,
    created: datetime,
    updated: datetime,
    input_json: str | None,
    output_json: str | None,
    custom_status_json: str | None,
    failure_details: str | None,
    state_blob: str,
    state_inline: str | None = None,
    lease_owner: str = "",
    lease_until: datetime = _NOT_LEASED,
) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": instance_id,
        "RowKey": _ROW_KEY,
        "Name": name,
        "ExecutionId": execution_id,
        "RuntimeStatus": str(status),
        "CreatedTime": created,
        "LastUpdatedTime": updated,
        "StateBlob": state_blob,
        "LeaseOwner": lease_owner,
        "LeaseUntil": lease_until,
    }
    if state_inline is not None:
        entity["State"] = state_inline
    large = []
    for prop, value in (
        ("Input", input_json),
        ("Output", output_json),
        ("CustomStatus", custom_status_json),
    ):
        if value is None:
            continue
        if len(value) > _MAX_ROW_TEXT:
            large.append(prop)
        else:
            entity[prop] = value
    if large:
        entity["LargeFields"] = ",".join(large)
    if failure_details:
        entity["FailureDetails"] = failure_details[:_MAX_ROW_TEXT]
    return entity


@dataclass(frozen=True)
class _Stored:
    """An execution's state blob."""

    name: str
    execution_id: str
    input: str | None
    history: list[HistoryEvent] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    output: str | None = None
    custom_status: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "executionId": self.execution_id,
            "input": self.input,
            "history": self.history,
            "applied": self.applied,
            "output": self.output,
            "customStatus": self.custom_status,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Stored:
        return cls(
            name=data["name"],
            execution_id=data["executionId"],
            input=data.get("input"),
            history=list(data.get("history") or []),
            applied=list(data.get("applied") or []),
            output=data.get("output"),
            custom_status=data.get("customStatus"),
        )


@dataclass(frozen=True)
class _Message:
    """A received control message and its envelope."""

    queued: QueueMessage
    envelope: dict[str, Any]
    offload_blob: str | None

    @property
    def mid(self) -> str:
        mid: str = self.envelope["mid"]
        return mid

    @property
    def execution_id(self) -> str:
        execution_id: str = self.envelope.get("executionId") or ""
        return execution_id

    @property
    def event(self) -> HistoryEvent:
        event: HistoryEvent = self.envelope["event"]
        return event

    @property
    def event_type(self) -> EventType:
        return EventType(self.event["EventType"])

    @property
    def sort_key(self) -> tuple[int, str]:
        first = 0 if self.event_type is EventType.EXECUTION_STARTED else 1
        return first, self.envelope.get("sentAt") or ""


@dataclass
class _Plan:
    """What to do with one instance's messages."""

    start: _Message | None = None
    apply: list[_Message] = field(default_factory=list)
    drop: list[_Message] = field(default_factory=list)
    defer: list[_Message] = field(default_factory=list)
    reschedule: list[_Message] = field(default_factory=list)


@dataclass(frozen=True)
class _HistoryIndex:
    """What a history has scheduled and completed (for dropping duplicates)."""

    started: bool
    scheduled: frozenset[int]
    completed: frozenset[int]
    timers: Mapping[int, str]
    fired: frozenset[int]

    @classmethod
    def of(cls, history: Iterable[HistoryEvent]) -> _HistoryIndex:
        started = False
        scheduled: set[int] = set()
        completed: set[int] = set()
        timers: dict[int, str] = {}
        fired: set[int] = set()
        for event in history:
            kind = event["EventType"]
            if kind == EventType.EXECUTION_STARTED:
                started = True
            elif kind == EventType.TASK_SCHEDULED:
                scheduled.add(event["EventId"])
            elif kind in (EventType.TASK_COMPLETED, EventType.TASK_FAILED):
                completed.add(event["TaskScheduledId"])
            elif kind == EventType.TIMER_CREATED:
                timers[event["EventId"]] = event["FireAt"]
            elif kind == EventType.TIMER_FIRED:
                fired.add(event["TimerId"])
        return cls(started, frozenset(scheduled), frozenset(completed), timers, frozenset(fired))


# -- the host --------------------------------------------------------------------------------


class AzuriteDurableHost:
    """Durable orchestrations kept in Azure Storage (see the module docstring).

    `functions` (an `AppFunctions`, e.g. from `registry.app_functions_of(app)`) and/or the
    `orchestrators`/`activities` maps name the app's Durable functions (names are
    case-insensitive). Thread-safe: one object may serve many threads; any number of objects,
    in any number of processes, may share a hub.
    """

    def __init__(
        self,
        connection_string: str,
        functions: AppFunctions | None = None,
        *,
        orchestrators: Mapping[str, OrchestratorFunction] | None = None,
        activities: Mapping[str, ActivityFunction] | None = None,
        hub: str = DEFAULT_HUB,
        clock: Callable[[], datetime] = utc_now,
        lease_seconds: int = 30,
        activity_lease_seconds: int = 30,
        defer_seconds: int = 1,
        max_activity_deliveries: int = 10,
        create_resources: bool = True,
        on_send: Callable[[str], None] | None = None,
    ) -> None:
        if lease_seconds < 1 or activity_lease_seconds < 1 or defer_seconds < 0:
            raise ValueError("leases are whole seconds, at least 1")
        self.names = HubNames(validate_hub(hub))
        self._clock = clock
        self.lease_seconds = lease_seconds
        self.activity_lease_seconds = activity_lease_seconds
        self.defer_seconds = defer_seconds
        self.max_activity_deliveries = max_activity_deliveries
        self._on_send = on_send  # told the queue's name when a message is visible at once
        self._orchestrators: dict[str, tuple[str, OrchestratorFunction]] = {}
        self._activities: dict[str, tuple[str, ActivityFunction]] = {}
        for name, orchestrator in {
            **(functions.orchestrators if functions else {}),
            **(orchestrators or {}),
        }.items():
            self._orchestrators[name.lower()] = (name, orchestrator)
        for name, activity in {
            **(functions.activities if functions else {}),
            **(activities or {}),
        }.items():
            self._activities[name.lower()] = (name, activity)
        self._table = TableClient.from_connection_string(connection_string, self.names.table)
        self._container: ContainerClient = BlobServiceClient.from_connection_string(
            connection_string
        ).get_container_client(self.names.container)
        self._control = QueueClient.from_connection_string(
            connection_string, self.names.control_queue
        )
        self._workitems = QueueClient.from_connection_string(
            connection_string, self.names.workitem_queue
        )
        if create_resources:
            self.create_resources()

    @property
    def hub(self) -> str:
        return self.names.hub

    def now(self) -> datetime:
        """The host's clock."""
        return self._clock()

    def create_resources(self) -> None:
        """Create the hub's table, container and queues where missing."""
        for create in (
            self._table.create_table,
            self._container.create_container,
            self._control.create_queue,
            self._workitems.create_queue,
        ):
            try:
                create()
            except ResourceExistsError:
                pass

    @property
    def orchestrator_names(self) -> list[str]:
        return sorted(name for name, _ in self._orchestrators.values())

    @property
    def activity_names(self) -> list[str]:
        return sorted(name for name, _ in self._activities.values())

    # -- client operations --------------------------------------------------------------------

    def start_new(
        self, name: str, instance_id: str | None = None, input_json: str | None = None
    ) -> str:
        """Schedule a new instance of orchestrator `name` with input `input_json` (JSON text);
        its id. Raises `UnknownOrchestratorError`, `InvalidInstanceIdError`, or
        `instances.InstanceExistsError` for the id of a Pending or Running instance (a
        finished one is restarted: new execution, history reset)."""
        entry = self._orchestrators.get(name.lower())
        if entry is None:
            raise UnknownOrchestratorError(_unknown_orchestrator(name, self.orchestrator_names))
        instance_id = validate_instance_id(instance_id or uuid.uuid4().hex)
        for _ in range(3):
            if self._try_start(entry[0], instance_id, input_json):
                return instance_id
        raise InstanceExistsError(
            f"An Orchestration instance with ID {instance_id} is being started concurrently "
            f"and already exists."
        )

    def _try_start(self, name: str, instance_id: str, input_json: str | None) -> bool:
        """One attempt at `start_new`: False if the row changed under it (try again)."""
        now = self._clock()
        existing = self._read_row(instance_id)
        ensure_can_start(instance_id, existing.status if existing else None)
        execution_id = uuid.uuid4().hex
        event = execution_started(
            name=name,
            input_json=input_json,
            instance_id=instance_id,
            execution_id=execution_id,
            timestamp=now,
        )
        sent = self._send_control(instance_id, execution_id, event)  # first: see the docstring
        state_blob = ""
        if input_json is not None and len(input_json) > _MAX_ROW_TEXT:
            state_blob, _ = self._write_state(instance_id, _Stored(name, execution_id, input_json))
        entity = _row_entity(
            instance_id=instance_id,
            name=name,
            execution_id=execution_id,
            status=RuntimeStatus.PENDING,
            created=now,
            updated=now,
            input_json=input_json,
            output_json=None,
            custom_status_json=None,
            failure_details=None,
            state_blob=state_blob,
        )
        try:
            if existing is None:
                self._table.create_entity(entity)
            else:
                self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=existing.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            current = self._settled_row(instance_id, execution_id)
            if current is None or current.execution_id != execution_id:
                # Another start got there first: take our start message back (best effort).
                self._delete_message(self._control, sent.id, sent.pop_receipt)
                self._delete_blob(state_blob)
                ensure_can_start(instance_id, current.status if current else None)
                return False
            # else the work loop took the start message first and wrote the row itself
        else:
            if existing is not None:
                self._delete_blob(existing.state_blob)
        logger.info(
            "durable: scheduled %s instance %s (execution %s)", name, instance_id, execution_id
        )
        return True

    def _settled_row(self, instance_id: str, execution_id: str) -> _Row | None:
        """The row once no episode holds it (a worker may be applying our own start message
        right now: wait for its commit, at most one lease)."""
        deadline = time.monotonic() + self.lease_seconds
        row = self._read_row(instance_id)
        while (
            row is not None
            and row.execution_id != execution_id
            and row.leased_at(self._clock())
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
            row = self._read_row(instance_id)
        return row

    def raise_event(self, instance_id: str, event_name: str, data_json: str | None) -> None:
        """Send external event `event_name` with payload `data_json` (JSON text) to a Pending
        or Running instance (`InstanceNotFoundError`, `InstanceGoneError` otherwise)."""
        row = self._read_row(instance_id)
        ensure_can_raise_event(instance_id, row.status if row else None)
        assert row is not None
        self._send_control(
            instance_id, row.execution_id, event_raised(event_name, data_json, self._clock())
        )
        logger.debug("durable: event %s raised to instance %s", event_name, instance_id)

    def terminate(self, instance_id: str, reason: str | None) -> None:
        """Terminate a Pending or Running instance (takes effect at its next episode)."""
        row = self._read_row(instance_id)
        ensure_can_terminate(instance_id, row.status if row else None)
        assert row is not None
        self._send_control(
            instance_id, row.execution_id, execution_terminated(reason or "", self._clock())
        )
        logger.info("durable: termination of instance %s requested: %s", instance_id, reason)

    def restart(self, instance_id: str, *, new_instance_id: bool = True) -> str:
        """Start the instance's orchestrator again with its input: under a new id, or (for a
        finished instance) under the same one. The started instance's id."""
        row = self._read_row(instance_id)
        if row is None:
            raise InstanceNotFoundError(f"No instance with ID '{instance_id}' found.")
        input_json = row.input
        if "Input" in row.large and row.has_state:
            input_json = self._read_state(row).input
        return self.start_new(row.name, None if new_instance_id else instance_id, input_json)

    def get_status(
        self,
        instance_id: str,
        *,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = True,
    ) -> dict[str, Any] | None:
        """The instance's status as the Durable HTTP API reports it (`historyEvents` when
        `show_history`), or None if there is no such instance."""
        row = self._read_row(instance_id)
        if row is None:
            return None
        stored = self._read_state(row) if (row.large or show_history) and row.has_state else None
        body = self._status(row, stored, show_input=show_input)
        if show_history:
            history = stored.history if stored else []
            body["historyEvents"] = display_history(
                history, show_output=show_history_output, show_input=show_input
            )
        return body

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The stored history of the instance's current execution (raw events)."""
        row = self._read_row(instance_id)
        if row is None or not row.has_state:
            return []
        return self._read_state(row).history

    def query_instances(
        self,
        *,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        statuses: Iterable[str] | None = None,
        instance_id_prefix: str | None = None,
        show_input: bool = True,
    ) -> list[dict[str, Any]]:
        """Statuses of the instances matching every given filter (a table scan)."""
        return [
            self._status(row, None, show_input=show_input)
            for row in self._query_rows(created_from, created_to, statuses, instance_id_prefix)
        ]

    def purge(self, instance_id: str) -> bool:
        """Delete a finished instance and its state; whether one was deleted (Pending and
        Running instances are kept)."""
        row = self._read_row(instance_id)
        if row is None or row.status not in FINISHED:
            return False
        try:
            self._table.delete_entity(
                instance_id,
                _ROW_KEY,
                etag=row.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            return False  # changed meanwhile (restarted): not purged
        except ResourceNotFoundError:
            return False
        for blob in self._container.list_blobs(name_starts_with=_instance_prefix(instance_id)):
            self._delete_blob(blob.name)
        logger.info("durable: purged instance %s", instance_id)
        return True

    def purge_instances(
        self,
        *,
        created_from: datetime,
        created_to: datetime | None = None,
        statuses: Iterable[str] | None = None,
    ) -> int:
        """Purge the finished instances created in the period (with one of `statuses`); how
        many were deleted."""
        rows = self._query_rows(created_from, created_to, statuses, None)
        return sum(self.purge(row.instance_id) for row in rows if row.status in FINISHED)

    # -- the work loop ------------------------------------------------------------------------

    def run_until(self, stop: threading.Event, *, idle_seconds: float = 0.05) -> None:
        """Process orchestrations and activities until `stop` is set (sleeping `idle_seconds`
        whenever there was nothing to do)."""
        while not stop.is_set():
            try:
                busy = self.process_orchestrations() + self.process_activities()
            except Exception:  # storage unreachable, most likely: retry after a pause
                logger.exception("durable: work loop error; retrying in a second")
                stop.wait(1.0)
                continue
            if not busy:
                stop.wait(idle_seconds)

    def process_orchestrations(self, max_messages: int = _RECEIVE_LIMIT) -> int:
        """Take up to `max_messages` control messages, run one episode per instance that has
        any to apply, and carry out the decisions; how many messages were consumed."""
        received = list(
            self._control.receive_messages(
                max_messages=max_messages,
                messages_per_page=min(max_messages, _RECEIVE_LIMIT),
                visibility_timeout=self.lease_seconds,
            )
        )
        groups: dict[str, list[_Message]] = {}
        consumed = 0
        for queued in received:
            message = self._open_control(queued)
            if message is None:
                self._delete_message(self._control, queued.id, queued.pop_receipt)
                consumed += 1
                continue
            groups.setdefault(message.envelope["instanceId"], []).append(message)
        for instance_id, messages in groups.items():
            try:
                consumed += self._process_instance(instance_id, sorted(messages, key=_sort_key))
            except Exception:
                logger.exception(
                    "durable: instance %s: processing failed; its messages return after %ss",
                    instance_id,
                    self.lease_seconds,
                )
        return consumed

    def process_activities(self, max_messages: int = 1) -> int:
        """Take up to `max_messages` work items and run their activities one after the
        other, each kept invisible (renewed) while it runs; how many were completed."""
        received = list(
            self._workitems.receive_messages(
                max_messages=max_messages,
                messages_per_page=min(max_messages, _RECEIVE_LIMIT),
                visibility_timeout=self.activity_lease_seconds,
            )
        )
        done = 0
        for queued in received:
            with _Renewal(self._workitems, queued, self.activity_lease_seconds) as renewal:
                envelope, offload_blob = self._open(queued)
                if envelope is not None:
                    self._run_work_item(envelope, queued.dequeue_count or 1)
            self._delete_message(self._workitems, queued.id, renewal.pop_receipt)
            self._delete_blob(offload_blob)
            done += 1
        return done

    # -- one instance's batch -----------------------------------------------------------------

    def _process_instance(self, instance_id: str, messages: list[_Message]) -> int:
        now = self._clock()
        row = self._read_row(instance_id)
        if row is not None and row.leased_at(now):
            logger.debug("durable: instance %s is leased elsewhere; deferring", instance_id)
            self._defer(messages)
            return 0
        stored = self._read_state(row) if row is not None and row.has_state else None
        plan = _plan(row, stored, messages, now)
        for message in plan.drop:
            logger.debug(
                "durable: instance %s: dropping %s %s",
                instance_id,
                message.event_type.name,
                message.mid,
            )
        self._defer(plan.defer)
        for message in plan.reschedule:  # a timer beyond the queue's reach: wait again
            fire_at = parse_iso(message.event["FireAt"])
            self._send(self._control, message.envelope, delay=(fire_at - now).total_seconds())
        self._consume(plan.reschedule)
        if plan.start is None and not plan.apply:
            self._consume(plan.drop)
            return len(plan.drop) + len(plan.reschedule)

        lease = self._take_lease(instance_id, row, plan.start, now)
        if lease is None:
            logger.debug("durable: instance %s: lease taken by another worker", instance_id)
            self._defer([*plan.apply, *plan.drop, *([plan.start] if plan.start else [])])
            return 0

        if plan.start is not None:
            start_event = plan.start.event
            state = OrchestrationState(instance_id, start_event["Name"], start_event["Input"], [])
            execution_id = plan.start.execution_id
            created = parse_iso(start_event["Timestamp"])
            applied: list[str] = []
        else:
            assert row is not None and stored is not None
            state = OrchestrationState(instance_id, stored.name, stored.input, stored.history)
            execution_id = row.execution_id
            created = row.created
            applied = list(stored.applied)
        events = [m.event for m in ([plan.start] if plan.start else []) + plan.apply]
        applied += [m.mid for m in ([plan.start] if plan.start else []) + plan.apply]

        decision, execution_id = self._episode(state, events, execution_id, now)
        self._dispatch(instance_id, execution_id, decision, now)
        output_json = None if decision.output is None else _compact(decision.output)
        custom_json = None if decision.custom_status is None else _compact(decision.custom_status)
        stored_next = _Stored(
            name=decision.state.name,
            execution_id=execution_id,
            input=decision.state.input,
            history=decision.state.history,
            applied=applied[-_APPLIED_KEPT:],
            output=output_json,
            custom_status=custom_json,
        )
        if not self._commit(lease, row, stored_next, decision, created, now):
            logger.warning(
                "durable: instance %s: lost its lease during an episode; it will run again",
                instance_id,
            )
            return 0
        self._consume([*([plan.start] if plan.start else []), *plan.apply, *plan.drop])
        if decision.status is RuntimeStatus.FAILED:
            logger.warning("durable: instance %s failed: %.500s", instance_id, decision.output)
        elif decision.status in FINISHED:
            logger.info("durable: instance %s %s", instance_id, str(decision.status).lower())
        else:
            logger.debug(
                "durable: instance %s episode: %d activities, %d timers",
                instance_id,
                len(decision.activities),
                len(decision.timers),
            )
        return len(plan.apply) + len(plan.drop) + len(plan.reschedule) + (1 if plan.start else 0)

    def _episode(
        self,
        state: OrchestrationState,
        events: Sequence[HistoryEvent],
        execution_id: str,
        now: datetime,
    ) -> tuple[Decision, str]:
        decision = self._run_episode(state, events, now)
        generations = 0
        while decision.status is RuntimeStatus.CONTINUED_AS_NEW:
            generations += 1
            execution_id = uuid.uuid4().hex
            if generations > _MAX_GENERATIONS:
                message = f"more than {_MAX_GENERATIONS} ContinueAsNew generations in a row"
                return _failed_decision(decision.state, [], now, message), execution_id
            start = execution_started(
                name=decision.state.name,
                input_json=decision.state.input,
                instance_id=decision.state.instance_id,
                execution_id=execution_id,
                timestamp=now,
            )
            logger.info(
                "durable: instance %s continued as new (execution %s)",
                state.instance_id,
                execution_id,
            )
            decision = self._run_episode(decision.state, [start], now)
        return decision, execution_id

    def _run_episode(
        self, state: OrchestrationState, events: Sequence[HistoryEvent], now: datetime
    ) -> Decision:
        entry = self._orchestrators.get(state.name.lower())
        if entry is None:
            message = _failed_text(
                state.name, _unknown_orchestrator(state.name, self.orchestrator_names)
            )
            return _failed_decision(state, events, now, message)
        try:
            return run_episode(entry[1], state, events, now, known_activities=self.activity_names)
        except Exception as exc:  # e.g. UnsupportedActionError: the instance fails
            logger.exception("durable: instance %s: episode failed", state.instance_id)
            message = _failed_text(state.name, f"{type(exc).__name__}: {exc}")
            return _failed_decision(
                state, events, now, message, details="".join(traceback.format_exception(exc))
            )

    def _take_lease(
        self, instance_id: str, row: _Row | None, start: _Message | None, now: datetime
    ) -> str | None:
        """Lease the instance row (creating it for a start that has none); the row's new
        ETag, or None if another worker got there first."""
        owner = uuid.uuid4().hex
        until = now + timedelta(seconds=self.lease_seconds)
        try:
            if row is None:
                assert start is not None
                event = start.event
                metadata = self._table.create_entity(
                    _row_entity(
                        instance_id=instance_id,
                        name=event["Name"],
                        execution_id=start.execution_id,
                        status=RuntimeStatus.PENDING,
                        created=parse_iso(event["Timestamp"]),
                        updated=now,
                        input_json=event["Input"],
                        output_json=None,
                        custom_status_json=None,
                        failure_details=None,
                        state_blob="",
                        lease_owner=owner,
                        lease_until=until,
                    )
                )
            else:
                metadata = self._table.update_entity(
                    {
                        "PartitionKey": instance_id,
                        "RowKey": _ROW_KEY,
                        "LeaseOwner": owner,
                        "LeaseUntil": until,
                    },
                    mode=UpdateMode.MERGE,
                    etag=row.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return None
        return _etag(metadata)

    def _dispatch(
        self, instance_id: str, execution_id: str, decision: Decision, now: datetime
    ) -> None:
        for call in decision.activities:
            self._send(
                self._workitems,
                {
                    "mid": f"{instance_id}:{execution_id}:task:{call.task_id}",
                    "instanceId": instance_id,
                    "executionId": execution_id,
                    "sentAt": iso(now),
                    "taskId": call.task_id,
                    "name": call.name,
                    "input": call.input,
                },
            )
        for timer in decision.timers:
            event = timer_fired(timer.timer_id, timer.fire_at, timer.fire_at)
            self._send(
                self._control,
                {
                    "mid": f"{instance_id}:{execution_id}:timer:{timer.timer_id}",
                    "instanceId": instance_id,
                    "executionId": execution_id,
                    "sentAt": event["FireAt"],
                    "event": event,
                },
                delay=(timer.fire_at - now).total_seconds(),
            )

    def _commit(
        self,
        lease_etag: str,
        row: _Row | None,
        stored: _Stored,
        decision: Decision,
        created: datetime,
        now: datetime,
    ) -> bool:
        """Write the new state blob, then swing the row to it (ETag-guarded); whether the
        episode was committed."""
        instance_id = decision.state.instance_id
        blob, inline = self._write_state(instance_id, stored)
        entity = _row_entity(
            instance_id=instance_id,
            name=stored.name,
            execution_id=stored.execution_id,
            status=decision.status,
            created=created,
            updated=now,
            input_json=stored.input,
            output_json=stored.output,
            custom_status_json=stored.custom_status,
            failure_details=decision.failure_details,
            state_blob=blob,
            state_inline=inline,
        )
        try:
            self._table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=lease_etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            self._delete_blob(blob)
            return False
        if row is not None and row.state_blob and row.state_blob != blob:
            self._delete_blob(row.state_blob)
        return True

    # -- activities ---------------------------------------------------------------------------

    def _run_work_item(self, envelope: Mapping[str, Any], deliveries: int) -> None:
        instance_id = envelope["instanceId"]
        task_id = int(envelope["taskId"])
        name = envelope["name"]
        entry = self._activities.get(name.lower())
        if deliveries > self.max_activity_deliveries:
            logger.error(
                "durable: instance %s: activity %s abandoned after %d deliveries",
                instance_id,
                name,
                deliveries - 1,
            )
            result = task_failed(
                task_id,
                f"Activity function '{name}' failed: devhost abandoned the work item after "
                f"{deliveries - 1} deliveries (its worker stopped each time).",
                None,
                self._clock(),
            )
        elif entry is None:
            result = task_failed(
                task_id,
                f"The function '{name}' doesn't exist, is disabled, or is not an activity "
                f"function.",
                None,
                self._clock(),
            )
        else:
            canonical, activity = entry
            logger.debug("durable: instance %s: running activity %s", instance_id, canonical)
            try:
                result_json = invoke_activity(activity, envelope.get("input"))
            except Exception as exc:
                logger.info(
                    "durable: instance %s: activity %s failed: %s", instance_id, canonical, exc
                )
                reason, details = activity_failure(canonical, exc)
                result = task_failed(task_id, reason, details, self._clock())
            else:
                result = task_completed(task_id, result_json, self._clock())
        self._send(
            self._control,
            {
                "mid": f"{envelope['mid']}:result",
                "instanceId": instance_id,
                "executionId": envelope["executionId"],
                "sentAt": result["Timestamp"],
                "event": result,
            },
        )

    # -- storage helpers ----------------------------------------------------------------------

    def _read_row(self, instance_id: str) -> _Row | None:
        try:
            entity = self._table.get_entity(instance_id, _ROW_KEY)
        except ResourceNotFoundError:
            return None
        return _Row.of(entity, _etag(entity.metadata))

    def _query_rows(
        self,
        created_from: datetime | None,
        created_to: datetime | None,
        statuses: Iterable[str] | None,
        prefix: str | None,
    ) -> list[_Row]:
        wanted = {s.lower() for s in statuses} if statuses else None
        rows = []
        for entity in self._table.list_entities():
            row = _Row.of(entity, _etag(entity.metadata))
            if prefix and not row.instance_id.startswith(prefix):
                continue
            if created_from and row.created < _aware(created_from):
                continue
            if created_to and row.created > _aware(created_to):
                continue
            if wanted is not None and str(row.status).lower() not in wanted:
                continue
            rows.append(row)
        return rows

    def _status(self, row: _Row, stored: _Stored | None, *, show_input: bool) -> dict[str, Any]:
        if row.large and stored is None and row.has_state:
            stored = self._read_state(row)
        input_json, output_json, custom_json = row.input, row.output, row.custom_status
        if stored is not None:
            input_json = stored.input if "Input" in row.large else input_json
            output_json = stored.output if "Output" in row.large else output_json
            custom_json = stored.custom_status if "CustomStatus" in row.large else custom_json
        return InstanceStatus(
            name=row.name,
            instance_id=row.instance_id,
            runtime_status=row.status,
            input=_loads(input_json) if show_input else None,
            output=_loads(output_json),
            custom_status=_loads(custom_json),
            created_time=row.created,
            last_updated_time=row.updated,
        ).to_json()

    def _read_state(self, row: _Row) -> _Stored:
        if row.state_inline is not None:
            return _Stored.from_json(json.loads(row.state_inline))
        data = json.loads(self._container.download_blob(row.state_blob).readall())
        return _Stored.from_json(data)

    def _write_state(self, instance_id: str, stored: _Stored) -> tuple[str, str | None]:
        """Where the new state lives: `("", json)` to keep it in the row when it fits (no
        blob to write, read or delete), else `(blob name, None)` for a NEW blob."""
        text = json.dumps(stored.to_json(), separators=(",", ":"))
        if len(text) <= _MAX_ROW_TEXT:
            return "", text
        name = f"{_instance_prefix(instance_id)}{stored.execution_id}/{uuid.uuid4().hex}.json"
        self._container.upload_blob(name, text, overwrite=True)
        return name, None

    def _delete_blob(self, name: str | None) -> None:
        if not name:
            return
        try:
            self._container.delete_blob(name)
        except ResourceNotFoundError:
            pass

    def _send_control(
        self, instance_id: str, execution_id: str, event: HistoryEvent
    ) -> QueueMessage:
        return self._send(
            self._control,
            {
                "mid": uuid.uuid4().hex,
                "instanceId": instance_id,
                "executionId": execution_id,
                "sentAt": iso(self._clock()),
                "event": event,
            },
        )

    def _send(
        self, queue: QueueClient, envelope: Mapping[str, Any], *, delay: float = 0.0
    ) -> QueueMessage:
        text = json.dumps(envelope, separators=(",", ":"))
        if len(text.encode()) > _MAX_MESSAGE_BYTES:
            blob = f"messages/{uuid.uuid4().hex}.json"
            self._container.upload_blob(blob, text, overwrite=True)
            text = json.dumps(
                {"mid": envelope["mid"], "instanceId": envelope["instanceId"], "blob": blob}
            )
        visibility = min(max(0, math.ceil(delay)), _MAX_VISIBILITY)
        sent = queue.send_message(text, visibility_timeout=visibility, time_to_live=-1)
        if visibility == 0 and self._on_send is not None:
            self._on_send(queue.queue_name)
        return sent

    def _open(self, queued: QueueMessage) -> tuple[dict[str, Any] | None, str | None]:
        """A message's envelope (fetched from its blob if offloaded) and that blob's name."""
        try:
            envelope: dict[str, Any] = json.loads(queued.content)
            blob = envelope.get("blob")
            if blob:
                envelope = json.loads(self._container.download_blob(blob).readall())
            return envelope, blob
        except (ValueError, TypeError, ResourceNotFoundError) as exc:
            logger.warning("durable: unreadable queue message %s dropped: %s", queued.id, exc)
            return None, None

    def _open_control(self, queued: QueueMessage) -> _Message | None:
        envelope, blob = self._open(queued)
        if envelope is None or "event" not in envelope or "instanceId" not in envelope:
            return None
        return _Message(queued, envelope, blob)

    def _consume(self, messages: Iterable[_Message]) -> None:
        for message in messages:
            self._delete_message(self._control, message.queued.id, message.queued.pop_receipt)
            self._delete_blob(message.offload_blob)

    def _defer(self, messages: Iterable[_Message]) -> None:
        for message in messages:
            try:
                self._control.update_message(
                    message.queued.id,
                    message.queued.pop_receipt,
                    visibility_timeout=self.defer_seconds,
                )
            except HttpResponseError:
                pass  # already visible again and taken by someone else

    @staticmethod
    def _delete_message(queue: QueueClient, message_id: str, pop_receipt: str | None) -> None:
        try:
            queue.delete_message(message_id, pop_receipt)
        except HttpResponseError as exc:  # gone, or taken again meanwhile: a duplicate later
            logger.debug("durable: could not delete message %s: %s", message_id, exc)


# -- sorting a batch out ---------------------------------------------------------------------


def _sort_key(message: _Message) -> tuple[int, str]:
    return message.sort_key


def _plan(
    row: _Row | None, stored: _Stored | None, messages: Sequence[_Message], now: datetime
) -> _Plan:
    """Which of one instance's messages to apply, drop, defer or send again (see the module
    docstring); pure."""
    plan = _Plan()
    others = []
    history: list[HistoryEvent] = stored.history if stored else []
    for message in messages:
        if message.event_type is not EventType.EXECUTION_STARTED:
            others.append(message)
        elif plan.start is None and _starts(row, history, message):
            plan.start = message
        else:
            plan.drop.append(message)
    if plan.start is not None:
        execution_id, finished, history, applied = plan.start.execution_id, False, [], set()
    elif row is None:
        plan.drop.extend(others)
        return plan
    else:
        execution_id, finished = row.execution_id, row.status in FINISHED
        applied = set(stored.applied) if stored else set()
    index = _HistoryIndex.of(history)
    started = plan.start is not None or index.started
    completing: set[int] = set()
    firing: set[int] = set()
    for message in others:
        event = message.event
        if message.execution_id != execution_id or finished or message.mid in applied:
            plan.drop.append(message)
        elif not started:
            plan.defer.append(message)
        elif message.event_type in (EventType.TASK_COMPLETED, EventType.TASK_FAILED):
            task_id = event["TaskScheduledId"]
            if task_id not in index.scheduled or task_id in index.completed | completing:
                plan.drop.append(message)
            else:
                completing.add(task_id)
                plan.apply.append(message)
        elif message.event_type is EventType.TIMER_FIRED:
            timer_id = event["TimerId"]
            if index.timers.get(timer_id) != event["FireAt"] or timer_id in index.fired | firing:
                plan.drop.append(message)
            elif parse_iso(event["FireAt"]) > now + _TIMER_EARLY:
                plan.reschedule.append(message)
            else:
                firing.add(timer_id)
                plan.apply.append(message)
        else:
            plan.apply.append(message)
        applied.add(message.mid)
    return plan


def _starts(row: _Row | None, history: Sequence[HistoryEvent], message: _Message) -> bool:
    """Whether ExecutionStarted `message` (re)starts the instance whose row is `row`."""
    if row is None:
        return True
    if row.execution_id == message.execution_id:
        return row.status is RuntimeStatus.PENDING and not history
    created = parse_iso(message.event["Timestamp"])
    return row.status in FINISHED and row.created < created


# -- small helpers ---------------------------------------------------------------------------


def _etag(metadata: Mapping[str, Any]) -> str:
    etag = metadata.get("etag")
    if not etag:
        raise RuntimeError("the table service returned no ETag")
    return str(etag)


def _instance_prefix(instance_id: str) -> str:
    return f"instances/{quote(instance_id, safe='')}/"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _failed_text(name: str, error: str) -> str:
    return f"Orchestrator function '{name}' failed: {error}"


def _failed_decision(
    state: OrchestrationState,
    events: Sequence[HistoryEvent],
    now: datetime,
    message: str,
    *,
    details: str | None = None,
) -> Decision:
    """The instance fails with `message` without running the orchestrator."""
    history: list[HistoryEvent] = build_request(state, events, now)["history"]
    history.append(
        execution_completed(
            status=OrchestrationStatus.FAILED, result=message, event_id=-1, timestamp=now
        )
    )
    history.append(orchestrator_completed(now))
    played = [{**event, "IsPlayed": True} for event in history]
    return Decision(
        OrchestrationState(state.instance_id, state.name, state.input, played),
        RuntimeStatus.FAILED,
        output=message,
        failure_details=details or message,
    )


def _unknown_orchestrator(name: str, known: Sequence[str]) -> str:
    info = (
        "The following are the known orchestrator functions: '" + "', '".join(known) + "'."
        if known
        else "No orchestrator functions are currently registered!"
    )
    return (
        f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator "
        f"function. Additional info: {info}"
    )


class _Renewal:
    """Keeps a received queue message invisible until the block ends; `pop_receipt` is the
    latest receipt (needed to delete the message)."""

    def __init__(self, queue: QueueClient, message: QueueMessage, lease_seconds: int) -> None:
        self._queue = queue
        self._id = message.id
        self.pop_receipt: str | None = message.pop_receipt
        self._lease = lease_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"renew-{message.id}", daemon=True)

    def __enter__(self) -> _Renewal:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _renew(self) -> None:
        while not self._stop.wait(self._lease / 3):
            try:
                updated = self._queue.update_message(
                    self._id, self.pop_receipt, visibility_timeout=self._lease
                )
            except HttpResponseError as exc:
                logger.warning("durable: could not renew work item %s: %s", self._id, exc)
                return
            self.pop_receipt = updated.pop_receipt


# -- the history as the status API shows it --------------------------------------------------


def display_history(
    history: Sequence[HistoryEvent], *, show_output: bool, show_input: bool
) -> list[dict[str, Any]]:
    """`history` as the extension's status API shows it (`showHistory=true`): event types
    by name, OrchestratorStarted/Completed and TaskScheduled left out (a task's completion
    carries its FunctionName and ScheduledTime), results only with `show_output`."""
    scheduled = {e["EventId"]: e for e in history if e["EventType"] == EventType.TASK_SCHEDULED}
    hidden = {"EventId", "IsPlayed", "EventType", "FailureDetails", "TaskScheduledId"}
    shown: list[dict[str, Any]] = []
    for event in history:
        kind = EventType(event["EventType"])
        if kind in _HIDDEN_EVENTS:
            continue
        item: dict[str, Any] = {"EventType": _pascal(kind.name)}
        item.update((k, v) for k, v in event.items() if k not in hidden)
        if kind is EventType.EXECUTION_STARTED:
            item = {
                "EventType": item["EventType"],
                "FunctionName": event["Name"],
                "Timestamp": event["Timestamp"],
            }
            if show_input:
                item["Input"] = _loads(event.get("Input"))
        elif kind in (EventType.TASK_COMPLETED, EventType.TASK_FAILED):
            origin = scheduled.get(event["TaskScheduledId"], {})
            item["FunctionName"] = origin.get("Name")
            item["ScheduledTime"] = origin.get("Timestamp")
        elif kind is EventType.EXECUTION_COMPLETED:
            item["OrchestrationStatus"] = _pascal(
                OrchestrationStatus(event["OrchestrationStatus"]).name
            )
        elif kind is EventType.EVENT_RAISED:
            item["Input"] = _loads(event.get("Input")) if show_output else None
        if "Result" in item:
            result = item.pop("Result")
            if show_output:
                item["Result"] = _loads(result)
        shown.append(item)
    return shown


_HIDDEN_EVENTS = frozenset(
    {EventType.ORCHESTRATOR_STARTED, EventType.ORCHESTRATOR_COMPLETED, EventType.TASK_SCHEDULED}
)


def _pascal(enum_name: str) -> str:
    return enum_name.title().replace("_", "")


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
