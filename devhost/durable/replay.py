"""One orchestration episode, run the way the Durable Functions extension runs it (pure, no I/O).

The out-of-process protocol (Durable extension 2.x, schema V3; verified against
azure-functions-durable 1.7.0 and the extension's `OutOfProcOrchestrationShim`):

1. A batch of new messages for an instance (ExecutionStarted, TaskCompleted, TaskFailed,
   TimerFired, EventRaised, ...) starts an *episode*. DTFx appends OrchestratorStarted(now)
   and then the messages to the stored history.

2. The extension invokes the orchestrator function with the *whole* history, as JSON:

       {"history": [...], "input": "<JSON text>", "instanceId": ..., "isReplaying": ...,
        "parentInstanceId": null, "upperSchemaVersion": 1, "upperSchemaVersionNew": 3,
        "longRunningTimerIntervalDuration": "3.00:00:00",
        "maximumShortTimerDuration": "6.00:00:00",
        "defaultHttpAsyncRequestSleepTimeMillseconds": 30000}

   `history[0]` is OrchestratorStarted, `history[1]` ExecutionStarted (the SDK insists).
   `input` is a JSON string holding the input's JSON text (the Python client double-encodes
   it and the extension unwraps one level). The schema fields are the extension's
   `SchemaVersion` enum values (V2 = 1, V4 = 3); the SDK maps them to its ReplaySchema V3.
   The timer durations are the Azure Storage provider's; with them the SDK splits timers
   longer than 6 days into 3-day ones itself.

3. `Orchestrator.create(fn)` returns `handle(context)`, which accepts an object with a
   `body` attribute or the JSON text itself. The SDK replays the generator against the
   history and returns the orchestrator state as JSON text:

       {"isDone": bool, "schemaVersion": 2, "actions": [[action, ...]],
        "output": <JSON value>, "error": "<text>", "customStatus": <JSON value>}

   `output` is omitted when None, `error` and `customStatus` when falsy (so a custom status
   of 0 or "" never reaches the host). `actions` holds ONE list, cumulative over the whole
   execution: one action per yielded task not yielded before, in yield order. Action types:
   0 CallActivity {functionName, input}, 1 CallActivityWithRetry {functionName, input,
   retryOptions: {firstRetryIntervalInMilliseconds, maxNumberOfAttempts}}, 4 ContinueAsNew
   {input}, 5 CreateTimer {fireAt, isCanceled}, 6 WaitForExternalEvent {externalEventName},
   11 WhenAny / 12 WhenAll {compoundActions} (only the children not yielded before). When
   the orchestrator raises, `handle` raises
   `Exception("<message>\\n\\n$OutOfProcData$:<state JSON>")` and the state carries `error`.

4. The extension does not diff the action list. Its shim is itself a DTFx orchestration that
   replays the actions: `foreach action: try { await Invoke(action) } catch {}`, where
   CallActivity/CreateTimer allocate the next sequence number, CallActivityWithRetry runs
   DTFx's retry loop (attempt; on failure a timer at now + firstRetryInterval - the Python
   SDK sends no backoff, so the interval is constant - then the next attempt; after the last
   failure one more timer, then the error), WaitForExternalEvent takes a buffered event (FIFO
   per name, names case-insensitive) or waits (the newest waiter gets the next event), a
   cancelled CreateTimer still allocates its number but completes at once, WhenAll waits for
   every child (even after one failed), WhenAny for the first, and ContinueAsNew completes at
   once. Calling an activity the app does not have makes the shim throw ("The function 'x'
   doesn't exist, is disabled, or is not an activity function. ..."). DTFx feeds the
   history through this shim event by event: TaskScheduled/TimerCreated must match what the
   shim allocated (else "Non-Deterministic workflow detected"), completions resume it.
   Sequence numbers allocated but not yet in the history are the new work: TaskScheduled/
   TimerCreated events are appended and messages sent. This module simulates exactly that
   (`_ShimReplay`), which makes the SDK's and the host's sequence numbers agree, including
   retry timers interleaved with other work.

5. The episode ends with the instance still Running unless the shim got through every action
   and the SDK reported `isDone` or an error: then ExecutionCompleted (its EventId is the next
   sequence number) is appended, with the output JSON text, or for a failure the text
   `Orchestrator function '<name>' failed: <error>` (also what the status API reports as
   output). A custom status whose compact JSON takes more than 16 whole KB in UTF-16 fails
   the instance, as the extension's SetCustomStatus does. OrchestratorCompleted closes the
   episode. Work scheduled in an episode that completes the instance is still dispatched
   (DTFx does so); its results reach a finished instance and are dropped.

6. ContinueAsNew discards the history and any unprocessed events (the Python SDK cannot ask to
   preserve them) and DTFx starts the next generation at once: a fresh history with the new
   input, started by a new ExecutionStarted. Here that is a decision with status
   ContinuedAsNew and an empty history; the caller runs the next episode immediately.

Termination does not run the orchestrator: ExecutionTerminated among the new events ends the
instance Terminated with the reason as output.

The Python SDK mishandles two events of one name that arrive before the orchestrator waits
for them (durable-python #507): it keeps only the last one and hands it to every later wait
of that name (x=1 then x=2 raised early: two waits for "x" both get 2). This engine records
and delivers every event faithfully; what the SDK makes of them is the SDK's, as on Azure.
Use distinct event names.

Not supported (raise `UnsupportedActionError`): sub-orchestrations, entities, durable HTTP.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Collection, Generator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.actions import ActionType

from devhost.durable.history import (
    NO_EVENT_ID,
    EventType,
    HistoryEvent,
    OrchestrationStatus,
    execution_completed,
    orchestrator_completed,
    orchestrator_started,
    parse_iso,
    task_scheduled,
    timer_created,
)

__all__ = [
    "ActivityCall",
    "Decision",
    "OrchestrationState",
    "OrchestratorFunction",
    "OrchestratorInvocationError",
    "RuntimeStatus",
    "SdkResult",
    "TimerRequest",
    "UnsupportedActionError",
    "build_request",
    "invoke_orchestrator",
    "run_episode",
]

OrchestratorFunction = Callable[[df.DurableOrchestrationContext], Generator[Any, Any, Any]]
"""A raw orchestrator generator function (what `@app.orchestration_trigger` decorates)."""

OUT_OF_PROC_DATA = "\n\n$OutOfProcData$:"
MAX_CUSTOM_STATUS_KB = 16

# What the extension sends besides history/input/ids (see the module docstring, step 2).
_PROTOCOL_FIELDS: dict[str, Any] = {
    "parentInstanceId": None,
    "upperSchemaVersion": 1,
    "upperSchemaVersionNew": 3,
    "longRunningTimerIntervalDuration": "3.00:00:00",
    "maximumShortTimerDuration": "6.00:00:00",
    "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
}


class RuntimeStatus(StrEnum):
    """An instance's runtime status, spelled as the status API spells it."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    TERMINATED = "Terminated"


class UnsupportedActionError(NotImplementedError):
    """The orchestrator used an API devhost does not implement (e.g. sub-orchestrations)."""


class OrchestratorInvocationError(Exception):
    """The SDK failed without reporting an orchestrator state (not a user-code exception)."""


@dataclass(frozen=True)
class OrchestrationState:
    """What is stored per instance between episodes: plain JSON-serialisable data.

    `input` is the current generation's input as JSON text; `history` the events so far,
    all marked played (they are the past events of the next episode).
    """

    instance_id: str
    name: str
    input: str | None
    history: list[HistoryEvent] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "instanceId": self.instance_id,
            "name": self.name,
            "input": self.input,
            "history": self.history,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OrchestrationState:
        return cls(
            instance_id=data["instanceId"],
            name=data["name"],
            input=data["input"],
            history=list(data["history"]),
        )


@dataclass(frozen=True)
class ActivityCall:
    """An activity to run; its result goes back as TaskCompleted/TaskFailed(`task_id`)."""

    task_id: int
    name: str
    input: str | None


@dataclass(frozen=True)
class TimerRequest:
    """A durable timer to set; at `fire_at` it goes back as TimerFired(`timer_id`)."""

    timer_id: int
    fire_at: datetime


@dataclass(frozen=True)
class Decision:
    """The outcome of one episode.

    `state` is what to store (for ContinuedAsNew: the next generation, empty history, new
    input). `output` is what the status API reports: the orchestrator's return value when
    Completed, the failure text when Failed, the reason when Terminated. `activities` and
    `timers` are the work to dispatch. `actions` is the SDK's cumulative action list.
    """

    state: OrchestrationState
    status: RuntimeStatus
    output: Any = None
    custom_status: Any = None
    failure_details: str | None = None
    activities: tuple[ActivityCall, ...] = ()
    timers: tuple[TimerRequest, ...] = ()
    actions: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class SdkResult:
    """The orchestrator state the SDK returned (`state`), with the traceback of the
    orchestrator's exception when it raised one."""

    state: dict[str, Any]
    traceback: str | None = None

    @property
    def is_done(self) -> bool:
        return bool(self.state.get("isDone"))

    @property
    def error(self) -> str | None:
        error: str | None = self.state.get("error")
        return error

    @property
    def actions(self) -> list[dict[str, Any]]:
        """The flat, cumulative action list (schema >= V2 wraps it in one outer list)."""
        outer: list[list[dict[str, Any]]] = self.state.get("actions") or []
        if len(outer) > 1:
            raise OrchestratorInvocationError(
                f"expected one cumulative action list (schema V2+), got {len(outer)}"
            )
        return outer[0] if outer else []


def build_request(
    state: OrchestrationState, new_events: Sequence[HistoryEvent], now: datetime
) -> dict[str, Any]:
    """The JSON the extension sends for an episode: past history + OrchestratorStarted(now)
    + `new_events` (the latter two unplayed)."""
    episode = [orchestrator_started(now), *({**event, "IsPlayed": False} for event in new_events)]
    return {
        "history": [*state.history, *episode],
        "input": state.input,
        "instanceId": state.instance_id,
        "isReplaying": bool(state.history),
        **_PROTOCOL_FIELDS,
    }


def invoke_orchestrator(orchestrator: OrchestratorFunction, request: dict[str, Any]) -> SdkResult:
    """Call the real SDK with `request` and parse what it returns or raises."""
    handle = df.Orchestrator.create(orchestrator)
    try:
        return SdkResult(json.loads(handle(json.dumps(request))))
    except Exception as exc:
        _, marker, payload = str(exc).rpartition(OUT_OF_PROC_DATA)
        if not marker:
            raise OrchestratorInvocationError(str(exc)) from exc
        cause = exc.__cause__ or exc
        return SdkResult(json.loads(payload), "".join(traceback.format_exception(cause)))


def run_episode(
    orchestrator: OrchestratorFunction,
    state: OrchestrationState,
    new_events: Sequence[HistoryEvent],
    now: datetime,
    *,
    known_activities: Collection[str] | None = None,
) -> Decision:
    """Run one episode of `state` with `new_events` at `now` and decide what happens next.

    A new instance (or generation) is `state` with an empty history and an ExecutionStarted
    among `new_events`. With `known_activities`, calling any other activity fails the
    instance as the extension does ("The function 'x' doesn't exist ...").
    """
    request = build_request(state, new_events, now)
    history: list[HistoryEvent] = request["history"]
    terminated = [e for e in new_events if e["EventType"] == EventType.EXECUTION_TERMINATED]
    if terminated:
        reason = terminated[0]["Input"]
        return _finish(state, history, now, RuntimeStatus.TERMINATED, output=reason, result=reason)
    try:
        sdk = invoke_orchestrator(orchestrator, request)
        actions = sdk.actions
    except OrchestratorInvocationError as exc:
        return _fail(state, history, now, _failed(state, str(exc)))
    custom_status = sdk.state.get("customStatus")
    oversized = _custom_status_error(custom_status)
    if oversized:
        return _fail(state, history, now, _failed(state, oversized))

    reported: dict[str, Any] = {"custom_status": custom_status, "actions": tuple(actions)}
    shim = _ShimReplay(actions, known_activities)
    try:
        shim.replay(history)
    except _NonDeterminismError as exc:  # raised by DTFx itself: no function prefix
        return _fail(state, history, now, str(exc), **reported)
    except _ShimError as exc:
        return _fail(state, history, now, _failed(state, str(exc)), **reported)

    done = shim.finished and (sdk.is_done or sdk.error is not None)
    if done and sdk.error is None and shim.continue_input is not None:
        next_generation = OrchestrationState(state.instance_id, state.name, shim.continue_input, [])
        return Decision(next_generation, RuntimeStatus.CONTINUED_AS_NEW, **reported)

    new_work = shim.new_work
    history.extend(_scheduled_event(work, now) for work in new_work)
    reported["activities"] = tuple(w for w in new_work if isinstance(w, ActivityCall))
    reported["timers"] = tuple(w for w in new_work if isinstance(w, TimerRequest))
    if not done:
        history.append(orchestrator_completed(now))
        return Decision(_stored(state, history), RuntimeStatus.RUNNING, **reported)
    if sdk.error is not None:
        return _fail(
            state,
            history,
            now,
            _failed(state, sdk.error),
            event_id=shim.next_id,
            failure_details=sdk.traceback or sdk.error,
            **reported,
        )
    output = sdk.state.get("output")
    return _finish(
        state,
        history,
        now,
        RuntimeStatus.COMPLETED,
        output=output,
        result=_compact(output),
        event_id=shim.next_id,
        **reported,
    )


def _failed(state: OrchestrationState, error: str) -> str:
    return f"Orchestrator function '{state.name}' failed: {error}"


def _scheduled_event(work: ActivityCall | TimerRequest, now: datetime) -> HistoryEvent:
    if isinstance(work, ActivityCall):
        return task_scheduled(work.task_id, work.name, work.input, now)
    return timer_created(work.timer_id, work.fire_at, now)


def _stored(state: OrchestrationState, history: list[HistoryEvent]) -> OrchestrationState:
    return replace(state, history=[{**event, "IsPlayed": True} for event in history])


def _finish(
    state: OrchestrationState,
    history: list[HistoryEvent],
    now: datetime,
    status: RuntimeStatus,
    *,
    output: Any,
    result: str | None,
    event_id: int = NO_EVENT_ID,
    **decision: Any,
) -> Decision:
    final = {
        RuntimeStatus.COMPLETED: OrchestrationStatus.COMPLETED,
        RuntimeStatus.FAILED: OrchestrationStatus.FAILED,
        RuntimeStatus.TERMINATED: OrchestrationStatus.TERMINATED,
    }[status]
    history.append(
        execution_completed(status=final, result=result, event_id=event_id, timestamp=now)
    )
    history.append(orchestrator_completed(now))
    return Decision(_stored(state, history), status, output=output, **decision)


def _fail(
    state: OrchestrationState,
    history: list[HistoryEvent],
    now: datetime,
    message: str,
    **decision: Any,
) -> Decision:
    decision.setdefault("failure_details", message)
    return _finish(
        state, history, now, RuntimeStatus.FAILED, output=message, result=message, **decision
    )


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _custom_status_error(custom_status: Any) -> str | None:
    """The extension's error for a custom status over 16 KB (UTF-16, truncated KB)."""
    if custom_status is None:
        return None
    size_kb = len(_compact(custom_status).encode("utf-16-le")) // 1024
    if size_kb <= MAX_CUSTOM_STATUS_KB:
        return None
    return (
        f"The UTF-16 size of the JSON-serialized payload must not exceed "
        f"{MAX_CUSTOM_STATUS_KB} KB. The current payload size is {size_kb:,} KB."
    )


# -- The extension's shim, simulated ---------------------------------------------------------


class _ShimError(Exception):
    """An exception the extension's shim surfaces: the instance fails."""


class _NonDeterminismError(_ShimError):
    """DTFx found the replay scheduling something else than the history recorded."""


class _Future:
    """A .NET Task as far as the shim observes it: done or not, faulted or not, and
    continuations that run synchronously when it completes."""

    def __init__(self) -> None:
        self.done = False
        self.failed = False
        self._continuations: list[Callable[[], None]] = []

    def resolve(self, *, failed: bool = False) -> None:
        if self.done:
            return
        self.done, self.failed = True, failed
        continuations, self._continuations = self._continuations, []
        for continuation in continuations:
            continuation()

    def then(self, continuation: Callable[[], None]) -> None:
        if self.done:
            continuation()
        else:
            self._continuations.append(continuation)


def _completed() -> _Future:
    future = _Future()
    future.resolve()
    return future


def _when_all(children: list[_Future]) -> _Future:
    combined = _Future()
    remaining = [len(children)]

    def child_done() -> None:
        remaining[0] -= 1
        if remaining[0] == 0:
            combined.resolve()

    if not children:
        combined.resolve()
    for child in children:
        child.then(child_done)
    return combined


def _when_any(children: list[_Future]) -> _Future:
    if not children:
        raise _ShimError("The tasks argument contains no tasks. (Parameter 'tasks')")
    combined = _Future()
    for child in children:
        child.then(combined.resolve)
    return combined


class _RetryingCall:
    """DTFx's RetryInterceptor for CallActivityWithRetry (default backoff coefficient 1)."""

    def __init__(
        self, shim: _ShimReplay, name: str, input_json: str | None, retry_options: dict[str, Any]
    ) -> None:
        self._shim, self._name, self._input = shim, name, input_json
        self._interval = timedelta(milliseconds=retry_options["firstRetryIntervalInMilliseconds"])
        self._max_attempts: int = retry_options["maxNumberOfAttempts"]
        self._attempts = 0
        self.outcome = _Future()
        self._attempt()

    def _attempt(self) -> None:
        self._attempts += 1
        call = self._shim.call_activity(self._name, self._input)
        call.then(lambda: self._attempted(call))

    def _attempted(self, call: _Future) -> None:
        if not call.failed:
            self.outcome.resolve()
            return
        self._shim.create_timer(self._shim.now + self._interval).then(self._waited)

    def _waited(self) -> None:
        if self._attempts >= self._max_attempts:
            self.outcome.resolve(failed=True)
        else:
            self._attempt()


class _ShimReplay:
    """The extension's OutOfProcOrchestrationShim running inside DTFx, fed one history."""

    def __init__(
        self, actions: list[dict[str, Any]], known_activities: Collection[str] | None
    ) -> None:
        self._actions = actions
        self._known = None if known_activities is None else sorted(known_activities)
        self._known_keys = {name.lower() for name in self._known or ()}
        self._cursor = 0
        self._work: dict[int, ActivityCall | TimerRequest] = {}
        self._confirmed: set[int] = set()
        self._open: dict[int, _Future] = {}
        self._waiting: dict[str, list[_Future]] = {}
        self._buffered: dict[str, int] = {}
        self.next_id = 0
        self.now = datetime.min
        self.finished = False
        self.continue_input: str | None = None

    @property
    def new_work(self) -> list[ActivityCall | TimerRequest]:
        """Allocated sequence numbers the history does not record yet, in order."""
        return [self._work[i] for i in sorted(self._work) if i not in self._confirmed]

    def replay(self, history: list[HistoryEvent]) -> None:
        for event in history:
            self._apply(event)

    def _apply(self, event: HistoryEvent) -> None:
        match EventType(event["EventType"]):
            case EventType.ORCHESTRATOR_STARTED:
                self.now = parse_iso(event["Timestamp"])
            case EventType.EXECUTION_STARTED:
                self._advance()
            case EventType.TASK_SCHEDULED:
                self._confirm(event["EventId"], event["Name"])
            case EventType.TIMER_CREATED:
                self._confirm(event["EventId"], None)
            case EventType.TASK_COMPLETED | EventType.TASK_FAILED as kind:
                self._complete(event["TaskScheduledId"], failed=kind == EventType.TASK_FAILED)
            case EventType.TIMER_FIRED:
                self._complete(event["TimerId"], failed=False)
            case EventType.EVENT_RAISED:
                self._raise_event(event["Name"])
            case _:
                pass

    def _advance(self) -> None:
        """The shim's loop: await each action in turn (exceptions are swallowed)."""
        while self._cursor < len(self._actions):
            awaited = self._invoke(self._actions[self._cursor])
            self._cursor += 1
            if not awaited.done:
                awaited.then(self._advance)
                return
        self.finished = True

    def _invoke(self, action: dict[str, Any]) -> _Future:
        match action["actionType"]:
            case ActionType.CALL_ACTIVITY:
                return self.call_activity(action["functionName"], action.get("input"))
            case ActionType.CALL_ACTIVITY_WITH_RETRY:
                return _RetryingCall(
                    self, action["functionName"], action.get("input"), action["retryOptions"]
                ).outcome
            case ActionType.CREATE_TIMER:
                timer_id = self.next_id
                timer = self.create_timer(parse_iso(action["fireAt"]))
                if action.get("isCanceled"):  # keeps its number, completes at once
                    self._complete(timer_id, failed=False)
                return timer
            case ActionType.WAIT_FOR_EXTERNAL_EVENT:
                return self._wait_for_event(action["externalEventName"])
            case ActionType.CONTINUE_AS_NEW:
                self.continue_input = action.get("input")
                return _completed()
            case ActionType.WHEN_ALL:
                return _when_all([self._invoke(a) for a in action["compoundActions"]])
            case ActionType.WHEN_ANY:
                return _when_any([self._invoke(a) for a in action["compoundActions"]])
            case other:
                raise UnsupportedActionError(
                    f"devhost does not implement Durable action type {other} ({action})"
                )

    def call_activity(self, name: str, input_json: str | None) -> _Future:
        if self._known is not None and name.lower() not in self._known_keys:
            known = (
                "The following are the known activity functions: '"
                + "', '".join(self._known)
                + "'."
                if self._known
                else "No activity functions are currently registered!"
            )
            raise _ShimError(
                f"The function '{name}' doesn't exist, is disabled, or is not an "
                f"activity function. Additional info: {known}"
            )
        return self._allocate(ActivityCall(self.next_id, name, input_json))

    def create_timer(self, fire_at: datetime) -> _Future:
        return self._allocate(TimerRequest(self.next_id, fire_at))

    def _allocate(self, work: ActivityCall | TimerRequest) -> _Future:
        self._work[self.next_id] = work
        future = self._open[self.next_id] = _Future()
        self.next_id += 1
        return future

    def _confirm(self, event_id: int, activity_name: str | None) -> None:
        """TaskScheduled (`activity_name`) or TimerCreated (None) recorded `event_id`."""
        work = self._work.get(event_id)
        if _describe(work) != _describe_recorded(activity_name):
            raise _NonDeterminismError(
                f"Non-Deterministic workflow detected: a previous execution of this "
                f"orchestration scheduled {_describe_recorded(activity_name)} with sequence "
                f"number {event_id}, but the current replay scheduled {_describe(work)} "
                f"there. Was a change made to the orchestrator code after this instance had "
                f"already started running?"
            )
        self._confirmed.add(event_id)

    def _complete(self, task_id: int, *, failed: bool) -> None:
        future = self._open.pop(task_id, None)
        if future is not None:  # else a cancelled timer or a stale result: ignored
            future.resolve(failed=failed)

    def _wait_for_event(self, name: str) -> _Future:
        key = name.lower()
        future = _Future()
        self._waiting.setdefault(key, []).append(future)
        if self._buffered.get(key):
            self._buffered[key] -= 1
            self._raise_event(name)
        return future

    def _raise_event(self, name: str) -> None:
        key = name.lower()
        waiters = self._waiting.get(key)
        if waiters:
            waiters.pop().resolve()
        else:
            self._buffered[key] = self._buffered.get(key, 0) + 1


def _describe(work: ActivityCall | TimerRequest | None) -> str:
    if work is None:
        return "nothing"
    return f"an activity task named '{work.name}'" if isinstance(work, ActivityCall) else "a timer"


def _describe_recorded(activity_name: str | None) -> str:
    return "a timer" if activity_name is None else f"an activity task named '{activity_name}'"
