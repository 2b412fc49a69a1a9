"""An in-memory Durable Functions host: deterministic, single-threaded, on a controllable clock.

It keeps every instance as the pure core's `OrchestrationState` plus a status record, and
plays the roles the Durable extension and Azure Storage play on Azure:

- Client operations (`start_new`, `raise_event`, `terminate`, `get_status`, `purge`) follow
  the service's rules (`devhost.durable.instances`). They only queue messages: an instance
  started by `start_new` stays Pending until the next `run_until_idle`, and events raised
  meanwhile reach it in the same first episode, as on Azure.
- `run_until_idle` repeats until nothing is left: deliver due timers, run one episode per
  instance with pending messages (`replay.run_episode`, all its messages in one batch), run
  the queued activities (each result, or its exception as TaskFailed with the host's
  reason/details, becomes a message). Work is processed in FIFO order, so runs are
  reproducible.
- Time stands still unless the test moves it: `advance(seconds)` moves the clock and makes the
  timers due by then fire (their TimerFired messages are processed by the next
  `run_until_idle`). Activities take no time.
- Messages for an execution that is over (results of work scheduled before a restart or a
  continue-as-new, anything for a finished instance) are dropped, as DTFx drops messages
  whose execution id does not match. A timer cancelled after `task_any` still fires while
  its instance runs; the SDK and the extension ignore it.
- ContinueAsNew queues the next generation's ExecutionStarted at once (new execution id,
  empty history) and the next round of `run_until_idle` runs it, so callers see the instance
  go straight back to Running - as on Azure, where DTFx runs it in the same work item.

Orchestrator and activity names are case-insensitive, like Durable function names.
`raise_event(id, name, data)` behaves like POSTing `data` as the JSON body of the raiseEvent
webhook: the orchestrator's `wait_for_external_event` returns `data` after a JSON round trip.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
from azure.durable_functions import Blueprint
from azure.durable_functions.models.utils.df_serialization import df_dumps

from devhost.durable.history import (
    HistoryEvent,
    activity_failure,
    event_raised,
    execution_started,
    execution_terminated,
    task_completed,
    task_failed,
    timer_fired,
)
from devhost.durable.instances import (
    FINISHED,
    InstanceStatus,
    ensure_can_raise_event,
    ensure_can_start,
    ensure_can_terminate,
)
from devhost.durable.registry import (
    ActivityFunction,
    app_functions_of,
    invoke_activity,
)
from devhost.durable.replay import (
    ActivityCall,
    Decision,
    OrchestrationState,
    OrchestratorFunction,
    RuntimeStatus,
    run_episode,
)

__all__ = ["EPOCH", "MemoryHost"]

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
"""Where a `MemoryHost` clock starts unless told otherwise."""


@dataclass
class _Instance:
    state: OrchestrationState
    execution_id: str
    status: RuntimeStatus
    created_time: datetime
    last_updated_time: datetime
    output: Any = None
    custom_status: Any = None
    inbox: list[HistoryEvent] = field(default_factory=list)


@dataclass(frozen=True)
class _QueuedActivity:
    instance_id: str
    execution_id: str
    call: ActivityCall


@dataclass(frozen=True, order=True)
class _PendingTimer:
    fire_at: datetime
    sequence: int
    instance_id: str = field(compare=False)
    execution_id: str = field(compare=False)
    timer_id: int = field(compare=False)


class MemoryHost:
    """Runs orchestrations with the real SDK, entirely in memory (see the module docstring)."""

    def __init__(self, *, now: datetime = EPOCH) -> None:
        self._now = now
        self._orchestrators: dict[str, tuple[str, OrchestratorFunction]] = {}
        self._activities: dict[str, tuple[str, ActivityFunction]] = {}
        self._instances: dict[str, _Instance] = {}
        self._activity_queue: deque[_QueuedActivity] = deque()
        self._timers: list[_PendingTimer] = []
        self._ids = itertools.count(1)

    @classmethod
    def from_app(
        cls, app: func.FunctionRegister | Blueprint, *, now: datetime = EPOCH
    ) -> MemoryHost:
        """A host running the orchestrators and activities of `app` (a DFApp or Blueprint)."""
        host = cls(now=now)
        host.register_app(app)
        return host

    # -- registration -------------------------------------------------------------------------

    def register_orchestrator(self, name: str, orchestrator: OrchestratorFunction) -> None:
        """Register a raw orchestrator generator function under `name`."""
        self._orchestrators[name.lower()] = (name, orchestrator)

    def register_activity(self, name: str, activity: ActivityFunction) -> None:
        """Register `activity(input) -> result` under `name`."""
        self._activities[name.lower()] = (name, activity)

    def register_app(self, app: func.FunctionRegister | Blueprint) -> None:
        """Register every orchestrator and activity of `app`."""
        functions = app_functions_of(app)
        for name, orchestrator in functions.orchestrators.items():
            self.register_orchestrator(name, orchestrator)
        for name, activity in functions.activities.items():
            self.register_activity(name, activity)

    # -- the clock ----------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward; timers due by the new time fire (processed when next run)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._now += timedelta(seconds=seconds)
        self._fire_due_timers()

    # -- the client API -----------------------------------------------------------------------

    def start_new(self, name: str, instance_id: str | None = None, input: Any = None) -> str:
        """Schedule a new instance of orchestrator `name` (Pending until run); its id.

        `input` is serialised as the Python client does (`df_dumps`)."""
        if name.lower() not in self._orchestrators:
            raise ValueError(_unknown_orchestrator(name, self._orchestrators))
        instance_id = instance_id or self._new_id()
        existing = self._instances.get(instance_id)
        ensure_can_start(instance_id, existing.status if existing else None)
        self._instances.pop(instance_id, None)
        input_json = None if input is None else df_dumps(input)
        canonical = self._orchestrators[name.lower()][0]
        instance = _Instance(
            OrchestrationState(instance_id, canonical, input_json, []),
            execution_id="",
            status=RuntimeStatus.PENDING,
            created_time=self._now,
            last_updated_time=self._now,
        )
        self._start_generation(instance)
        self._instances[instance_id] = instance  # (re)inserted last: FIFO order
        return instance_id

    def raise_event(self, instance_id: str, event_name: str, data: Any = None) -> None:
        """Send external event `event_name` with `data` to a Pending or Running instance."""
        instance = self._instances.get(instance_id)
        ensure_can_raise_event(instance_id, instance.status if instance else None)
        assert instance is not None
        instance.inbox.append(event_raised(event_name, json.dumps(data), self._now))

    def terminate(self, instance_id: str, reason: str) -> None:
        """Terminate a Pending or Running instance (takes effect when next run)."""
        instance = self._instances.get(instance_id)
        ensure_can_terminate(instance_id, instance.status if instance else None)
        assert instance is not None
        instance.inbox.append(execution_terminated(reason, self._now))

    def get_status(self, instance_id: str) -> InstanceStatus | None:
        """The instance's status, or None if there is no such instance."""
        instance = self._instances.get(instance_id)
        if instance is None:
            return None
        state = instance.state
        return InstanceStatus(
            name=state.name,
            instance_id=instance_id,
            runtime_status=instance.status,
            input=None if state.input is None else json.loads(state.input),
            output=instance.output,
            custom_status=instance.custom_status,
            created_time=instance.created_time,
            last_updated_time=instance.last_updated_time,
        )

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The stored history of the instance's current execution (a copy)."""
        return [dict(event) for event in self._instances[instance_id].state.history]

    def purge(self, instance_id: str) -> bool:
        """Delete a finished instance; whether one was deleted (running ones are kept)."""
        instance = self._instances.get(instance_id)
        if instance is None or instance.status not in FINISHED:
            return False
        del self._instances[instance_id]
        return True

    # -- running ------------------------------------------------------------------------------

    def run_until_idle(self, *, max_rounds: int = 10_000) -> None:
        """Run episodes and activities until no message and no activity is pending."""
        for _ in range(max_rounds):
            self._fire_due_timers()
            if not (self._run_orchestrations() or self._run_activities()):
                return
        raise RuntimeError(f"still busy after {max_rounds} rounds: an orchestration loops?")

    def _run_orchestrations(self) -> bool:
        ready = [i for i in self._instances.values() if i.inbox and i.status not in FINISHED]
        for instance in ready:
            messages, instance.inbox = instance.inbox, []
            self._apply(instance, self._episode(instance, messages))
        return bool(ready)

    def _episode(self, instance: _Instance, messages: list[HistoryEvent]) -> Decision:
        orchestrator = self._orchestrators[instance.state.name.lower()][1]
        return run_episode(
            orchestrator,
            instance.state,
            messages,
            self._now,
            known_activities=[name for name, _ in self._activities.values()],
        )

    def _apply(self, instance: _Instance, decision: Decision) -> None:
        instance.state = decision.state
        instance.status = decision.status
        instance.output = decision.output
        instance.custom_status = decision.custom_status
        instance.last_updated_time = self._now
        if decision.status is RuntimeStatus.CONTINUED_AS_NEW:
            self._start_generation(instance)
            return
        instance_id, execution_id = decision.state.instance_id, instance.execution_id
        self._activity_queue.extend(
            _QueuedActivity(instance_id, execution_id, call) for call in decision.activities
        )
        for timer in decision.timers:
            heapq.heappush(
                self._timers,
                _PendingTimer(
                    timer.fire_at, next(self._ids), instance_id, execution_id, timer.timer_id
                ),
            )

    def _start_generation(self, instance: _Instance) -> None:
        """Queue the ExecutionStarted of a new execution of `instance` (its state is the
        generation's: empty history, its input); runs in the next round."""
        state = instance.state
        instance.execution_id = self._new_id()
        instance.inbox = [
            execution_started(
                name=state.name,
                input_json=state.input,
                instance_id=state.instance_id,
                execution_id=instance.execution_id,
                timestamp=self._now,
            )
        ]

    def _run_activities(self) -> bool:
        queued, self._activity_queue = self._activity_queue, deque()
        for work in queued:
            self._deliver(work.instance_id, work.execution_id, self._run_activity(work.call))
        return bool(queued)

    def _run_activity(self, call: ActivityCall) -> HistoryEvent:
        name, activity = self._activities[call.name.lower()]
        try:
            result = invoke_activity(activity, call.input)
        except Exception as exc:
            reason, details = activity_failure(name, exc)
            return task_failed(call.task_id, reason, details, self._now)
        return task_completed(call.task_id, result, self._now)

    def _fire_due_timers(self) -> None:
        while self._timers and self._timers[0].fire_at <= self._now:
            timer = heapq.heappop(self._timers)
            self._deliver(
                timer.instance_id,
                timer.execution_id,
                timer_fired(timer.timer_id, timer.fire_at, self._now),
            )

    def _deliver(self, instance_id: str, execution_id: str, message: HistoryEvent) -> None:
        instance = self._instances.get(instance_id)
        if (
            instance is not None
            and instance.execution_id == execution_id
            and instance.status not in FINISHED
        ):
            instance.inbox.append(message)

    def _new_id(self) -> str:
        return f"{next(self._ids):032x}"


def _unknown_orchestrator(name: str, known: dict[str, tuple[str, OrchestratorFunction]]) -> str:
    names = sorted(canonical for canonical, _ in known.values())
    info = (
        "The following are the known orchestrator functions: '" + "', '".join(names) + "'."
        if names
        else "No orchestrator functions are currently registered!"
    )
    return (
        f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator "
        f"function. Additional info: {info}"
    )
