"""The Durable engine: the real SDK replayed over synthetic histories, through the pure core
(`replay.run_episode`) and the in-memory host (`memory.MemoryHost`)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from devhost.durable.history import (
    EventType,
    HistoryEvent,
    execution_started,
    task_completed,
    task_failed,
    timer_fired,
)
from devhost.durable.instances import (
    InstanceExistsError,
    InstanceGoneError,
    InstanceNotFoundError,
)
from devhost.durable.memory import EPOCH, MemoryHost
from devhost.durable.registry import app_functions_of, invoke_activity, orchestrator_from_app
from devhost.durable.replay import (
    ActivityCall,
    Decision,
    OrchestrationState,
    RuntimeStatus,
    TimerRequest,
    build_request,
    run_episode,
)

# The SDK's own notices: it warns about every event that arrives before its wait (it defers
# it), and about decoding without `expected_type`. Neither is about the engine.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Potential duplicate Task completion:UserWarning"),
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called:DeprecationWarning"),
]

Context = df.DurableOrchestrationContext
Orchestration = Generator[Any, Any, Any]

T0 = EPOCH
app = df.DFApp()


# -- activities -----------------------------------------------------------------------------


@app.activity_trigger(input_name="n")
def double(n: int) -> int:
    return n * 2


@app.activity_trigger(input_name="message")
def explode(message: str) -> None:
    raise ValueError(message)


@app.function_name("shout")
@app.activity_trigger(input_name="text")
def shout_activity(text: str) -> str:
    return text.upper()


# -- orchestrators --------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def chain(context: Context) -> Orchestration:
    first = yield context.call_activity("double", context.get_input())
    second = yield context.call_activity("double", first)
    return second


@app.orchestration_trigger(context_name="context")
def fan_out(context: Context) -> Orchestration:
    results = yield context.task_all(
        [context.call_activity("double", i) for i in range(context.get_input())]
    )
    return sum(results)


@app.orchestration_trigger(context_name="context")
def fan_out_strict(context: Context) -> Orchestration:
    yield context.task_all(
        [context.call_activity("explode", "first"), context.call_activity("double", 1)]
    )


@app.orchestration_trigger(context_name="context")
def approval(context: Context) -> Orchestration:
    decision = yield context.wait_for_external_event("approval")
    return decision


@app.orchestration_trigger(context_name="context")
def later_waits(context: Context) -> Orchestration:
    """Sleeps a minute, then waits for each named event in turn."""
    yield context.create_timer(context.current_utc_datetime + timedelta(minutes=1))
    received = []
    for name in context.get_input():
        received.append((yield context.wait_for_external_event(name)))
    return received


@app.orchestration_trigger(context_name="context")
def race(context: Context) -> Orchestration:
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=30))
    go = context.wait_for_external_event("go")
    winner = yield context.task_any([go, timer])
    if winner is not go:
        return ["timeout"]
    timer.cancel()
    done = yield context.wait_for_external_event("done")
    return ["event", go.result, done]


@app.orchestration_trigger(context_name="context")
def deadline(context: Context) -> Orchestration:
    fire_at = context.current_utc_datetime + timedelta(minutes=5)
    yield context.create_timer(fire_at)
    return fire_at.isoformat()


@app.orchestration_trigger(context_name="context")
def forgiving(context: Context) -> Orchestration:
    try:
        yield context.call_activity("explode", "no such image")
    except Exception as exc:
        fallback = yield context.call_activity("double", 21)
        return {"message": str(exc), "fallback": fallback}
    return None


@app.orchestration_trigger(context_name="context")
def crash(context: Context) -> Orchestration:
    value = yield context.call_activity("double", 1)
    raise RuntimeError(f"bad input {value}")


@app.orchestration_trigger(context_name="context")
def progress(context: Context) -> Orchestration:
    context.set_custom_status({"stage": "waiting"})
    step = yield context.wait_for_external_event("step")
    context.set_custom_status({"stage": "done", "step": step})
    return step


@app.orchestration_trigger(context_name="context")
def chatty(context: Context) -> Orchestration:
    context.set_custom_status("x" * 9000)  # 18 KB of UTF-16 JSON: over the 16 KB cap
    yield context.wait_for_external_event("never")


@app.orchestration_trigger(context_name="context")
def retrying(context: Context) -> Orchestration:
    options = df.RetryOptions(
        first_retry_interval_in_milliseconds=1000, max_number_of_attempts=context.get_input()
    )
    try:
        result = yield context.call_activity_with_retry("flaky", options, "payload")
    except Exception as exc:
        return {"gave_up": "still failing" in str(exc)}
    return result


@app.orchestration_trigger(context_name="context")
def retries_in_parallel(context: Context) -> Orchestration:
    slow = df.RetryOptions(first_retry_interval_in_milliseconds=5000, max_number_of_attempts=2)
    fast = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=2)
    results = yield context.task_all(
        [
            context.call_activity_with_retry("flaky", slow, "a"),
            context.call_activity("double", 1),
            context.call_activity_with_retry("flaky", fast, "c"),
        ]
    )
    return results


@app.orchestration_trigger(context_name="context")
def week_long(context: Context) -> Orchestration:
    yield context.create_timer(context.current_utc_datetime + timedelta(days=7))
    return "awake"


@app.orchestration_trigger(context_name="context")
def countdown(context: Context) -> Orchestration:
    n = context.get_input()
    doubled = yield context.call_activity("double", n)
    if n < 3:
        context.continue_as_new(n + 1)
        return None
    return doubled


@app.orchestration_trigger(context_name="context")
def misnamed(context: Context) -> Orchestration:
    yield context.call_activity("missing", 1)


@app.orchestration_trigger(context_name="context")
def loud(context: Context) -> Orchestration:
    return (yield context.call_activity("shout", "hi"))


# -- helpers --------------------------------------------------------------------------------


@pytest.fixture
def host() -> MemoryHost:
    return MemoryHost.from_app(app)


def start(name: str, input_json: str | None, instance_id: str = "inst") -> HistoryEvent:
    return execution_started(
        name=name,
        input_json=input_json,
        instance_id=instance_id,
        execution_id="exec-1",
        timestamp=T0,
    )


def first_episode(name: str, input_json: str | None = None) -> Decision:
    state = OrchestrationState("inst", name, input_json, [])
    return run_episode(orchestrator_from_app(app, name), state, [start(name, input_json)], T0)


def renamed(state: OrchestrationState, name: str) -> OrchestrationState:
    return OrchestrationState(state.instance_id, name, state.input, state.history)


def event_types(history: list[HistoryEvent]) -> list[int]:
    return [event["EventType"] for event in history]


def scheduled(history: list[HistoryEvent]) -> list[tuple[int, int, str | None]]:
    """(EventType, EventId, Name) of the events that allocate sequence numbers."""
    return [
        (e["EventType"], e["EventId"], e.get("Name"))
        for e in history
        if e["EventType"] in (EventType.TASK_SCHEDULED, EventType.TIMER_CREATED)
    ]


# -- the protocol, on the pure core ---------------------------------------------------------


def test_request_history_json_has_the_extensions_shape() -> None:
    orchestrator = orchestrator_from_app(app, "chain")
    state = OrchestrationState("inst", "chain", "3", [])

    request = build_request(state, [start("chain", "3")], T0)
    assert request == {
        "history": [
            {
                "EventType": 12,
                "EventId": -1,
                "IsPlayed": False,
                "Timestamp": "2024-01-01T00:00:00.000000Z",
            },
            {
                "EventType": 0,
                "EventId": -1,
                "IsPlayed": False,
                "Timestamp": "2024-01-01T00:00:00.000000Z",
                "Name": "chain",
                "Version": "",
                "Input": "3",
                "ParentInstance": None,
                "Tags": None,
                "OrchestrationInstance": {"InstanceId": "inst", "ExecutionId": "exec-1"},
            },
        ],
        "input": "3",
        "instanceId": "inst",
        "isReplaying": False,
        "parentInstanceId": None,
        "upperSchemaVersion": 1,
        "upperSchemaVersionNew": 3,
        "longRunningTimerIntervalDuration": "3.00:00:00",
        "maximumShortTimerDuration": "6.00:00:00",
        "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
    }
    first = run_episode(orchestrator, state, [start("chain", "3")], T0)
    assert first.status is RuntimeStatus.RUNNING
    assert first.activities == (ActivityCall(task_id=0, name="double", input="3"),)
    past = first.state.history
    assert past[2] == {
        "EventType": 4,
        "EventId": 0,
        "IsPlayed": True,
        "Timestamp": "2024-01-01T00:00:00.000000Z",
        "Name": "double",
        "Version": "",
        "Input": "3",
    }
    assert event_types(past) == [12, 0, 4, 13]
    assert all(event["IsPlayed"] for event in past)

    t1 = T0 + timedelta(seconds=1)
    request = build_request(first.state, [task_completed(0, "6", t1)], t1)
    assert request["isReplaying"] is True
    assert request["history"][:4] == past
    assert request["history"][4:] == [
        {
            "EventType": 12,
            "EventId": -1,
            "IsPlayed": False,
            "Timestamp": "2024-01-01T00:00:01.000000Z",
        },
        {
            "EventType": 5,
            "EventId": -1,
            "IsPlayed": False,
            "Timestamp": "2024-01-01T00:00:01.000000Z",
            "TaskScheduledId": 0,
            "Result": "6",
        },
    ]
    second = run_episode(orchestrator, first.state, [task_completed(0, "6", t1)], t1)
    assert second.activities == (ActivityCall(task_id=1, name="double", input="6"),)
    assert scheduled(second.state.history) == [(4, 0, "double"), (4, 1, "double")]

    third = run_episode(orchestrator, second.state, [task_completed(1, "12", t1)], t1)
    assert third.status is RuntimeStatus.COMPLETED
    assert third.output == 12
    assert third.state.history[-2] == {
        "EventType": 1,
        "EventId": 2,
        "IsPlayed": True,
        "Timestamp": "2024-01-01T00:00:01.000000Z",
        "OrchestrationStatus": 1,
        "Result": "12",
        "FailureDetails": None,
    }
    assert event_types(third.state.history)[-3:] == [5, 1, 13]


def test_timer_from_current_utc_datetime_replays_identically() -> None:
    orchestrator = orchestrator_from_app(app, "deadline")
    first = first_episode("deadline")
    assert first == first_episode("deadline")
    fire_at = T0 + timedelta(minutes=5)
    assert first.timers == (TimerRequest(timer_id=0, fire_at=fire_at),)
    assert first.actions == (
        {"actionType": 5, "fireAt": "2024-01-01T00:05:00.000000Z", "isCanceled": False},
    )

    # Replayed an hour later, the timer still comes from the recorded OrchestratorStarted.
    idle = run_episode(orchestrator, first.state, [], T0 + timedelta(hours=1))
    assert idle.status is RuntimeStatus.RUNNING
    assert (idle.actions, idle.timers) == (first.actions, ())

    fired = [timer_fired(0, fire_at, fire_at)]
    done = run_episode(orchestrator, first.state, fired, fire_at)
    assert done == run_episode(orchestrator, first.state, fired, fire_at)
    assert done.status is RuntimeStatus.COMPLETED
    assert done.output == fire_at.isoformat()


def test_when_all_waits_for_every_child_before_failing() -> None:
    """The extension's shim awaits Task.WhenAll, which waits for all children even after one
    failed, so the instance fails only when the last child is done."""
    orchestrator = orchestrator_from_app(app, "fan_out_strict")
    first = first_episode("fan_out_strict")
    assert [call.name for call in first.activities] == ["explode", "double"]

    failed = run_episode(orchestrator, first.state, [task_failed(0, "boom", None, T0)], T0)
    assert failed.status is RuntimeStatus.RUNNING
    assert failed.activities == ()

    last = run_episode(orchestrator, failed.state, [task_completed(1, "2", T0)], T0)
    assert last.status is RuntimeStatus.FAILED
    assert last.output == "Orchestrator function 'fan_out_strict' failed: boom \n None"


def test_replaying_a_history_with_changed_code_is_non_deterministic() -> None:
    first = first_episode("chain", "3")
    changed = orchestrator_from_app(app, "loud")  # schedules "shout" at sequence 0
    decision = run_episode(changed, renamed(first.state, "loud"), [task_completed(0, "6", T0)], T0)
    assert decision.status is RuntimeStatus.FAILED
    assert decision.output.startswith("Non-Deterministic workflow detected")
    assert "activity task named 'double' with sequence number 0" in decision.output


def test_state_round_trips_through_json() -> None:
    state = first_episode("chain", "3").state
    assert OrchestrationState.from_json(json.loads(json.dumps(state.to_json()))) == state


# -- the in-memory host ---------------------------------------------------------------------


def test_activity_chain(host: MemoryHost) -> None:
    instance_id = host.start_new("chain", "c-1", 3)
    assert host.get_status(instance_id).runtime_status is RuntimeStatus.PENDING

    host.run_until_idle()

    status = host.get_status(instance_id)
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert (status.input, status.output) == (3, 12)
    assert scheduled(host.get_history(instance_id)) == [(4, 0, "double"), (4, 1, "double")]
    assert status.to_json() == {
        "name": "chain",
        "instanceId": "c-1",
        "runtimeStatus": "Completed",
        "input": 3,
        "customStatus": None,
        "output": 12,
        "createdTime": "2024-01-01T00:00:00Z",
        "lastUpdatedTime": "2024-01-01T00:00:00Z",
    }


def test_fan_out_fan_in(host: MemoryHost) -> None:
    instance_id = host.start_new("fan_out", input=4)
    host.run_until_idle()

    assert host.get_status(instance_id).output == 2 * (0 + 1 + 2 + 3)
    history = host.get_history(instance_id)
    assert scheduled(history) == [(4, i, "double") for i in range(4)]
    completed = [e["TaskScheduledId"] for e in history if e["EventType"] == 5]
    assert sorted(completed) == [0, 1, 2, 3]
    assert history[-2]["EventType"] == EventType.EXECUTION_COMPLETED
    assert history[-2]["EventId"] == 4


def test_event_raised_while_waiting(host: MemoryHost) -> None:
    instance_id = host.start_new("approval", "a-1")
    host.run_until_idle()
    assert host.get_status(instance_id).runtime_status is RuntimeStatus.RUNNING

    host.raise_event(instance_id, "approval", {"approved": True})
    host.run_until_idle()

    status = host.get_status(instance_id)
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert status.output == {"approved": True}


def test_event_raised_before_the_instance_ran(host: MemoryHost) -> None:
    instance_id = host.start_new("approval", "a-2")
    host.raise_event(instance_id, "approval", "early")
    host.run_until_idle()

    assert host.get_status(instance_id).output == "early"
    assert event_types(host.get_history(instance_id))[:3] == [12, 0, 15]


def test_event_raised_before_waiting_is_kept_until_waited_for(host: MemoryHost) -> None:
    instance_id = host.start_new("later_waits", input=["go"])
    host.run_until_idle()
    host.raise_event(instance_id, "go", 42)
    host.run_until_idle()
    assert host.get_status(instance_id).runtime_status is RuntimeStatus.RUNNING
    assert [e.get("Name") for e in host.get_history(instance_id) if e["EventType"] == 15] == ["go"]

    host.advance(60)
    host.run_until_idle()

    status = host.get_status(instance_id)
    assert (status.runtime_status, status.output) == (RuntimeStatus.COMPLETED, [42])


def test_several_distinct_events_before_waiting(host: MemoryHost) -> None:
    instance_id = host.start_new("later_waits", input=["op-0", "op-1", "op-2"])
    host.run_until_idle()
    for name, payload in [("op-2", "c"), ("op-0", "a"), ("op-1", "b")]:
        host.raise_event(instance_id, name, payload)
    host.run_until_idle()
    host.advance(60)
    host.run_until_idle()

    assert host.get_status(instance_id).output == ["a", "b", "c"]


def test_same_name_events_before_waiting_are_all_delivered(host: MemoryHost) -> None:
    """The engine records both events; the SDK then mishandles them (durable-python #507:
    it keeps the last one and delivers it twice) - just as it would on Azure."""
    instance_id = host.start_new("later_waits", input=["x", "x"])
    host.run_until_idle()
    host.raise_event(instance_id, "x", 1)
    host.raise_event(instance_id, "x", 2)
    host.run_until_idle()
    host.advance(60)
    with pytest.warns(UserWarning, match="duplicate Task completion"):
        host.run_until_idle()

    raised = [e["Input"] for e in host.get_history(instance_id) if e["EventType"] == 15]
    assert raised == ["1", "2"]
    assert host.get_status(instance_id).output == [2, 2]


def test_task_any_event_before_timer(host: MemoryHost) -> None:
    instance_id = host.start_new("race", "r-1")
    host.run_until_idle()
    host.raise_event(instance_id, "go", "first")
    host.run_until_idle()
    assert host.get_status(instance_id).runtime_status is RuntimeStatus.RUNNING

    host.advance(30)  # the cancelled timer still fires: harmless
    host.run_until_idle()
    assert host.get_status(instance_id).runtime_status is RuntimeStatus.RUNNING
    assert 11 in event_types(host.get_history(instance_id))

    host.raise_event(instance_id, "done", "second")
    host.run_until_idle()
    assert host.get_status(instance_id).output == ["event", "first", "second"]


def test_task_any_timer_before_event(host: MemoryHost) -> None:
    instance_id = host.start_new("race", "r-2")
    host.run_until_idle()
    host.advance(29)
    host.run_until_idle()
    assert host.get_status(instance_id).runtime_status is RuntimeStatus.RUNNING

    host.advance(1)
    host.run_until_idle()

    assert host.get_status(instance_id).output == ["timeout"]
    with pytest.raises(InstanceGoneError):
        host.raise_event(instance_id, "go", "too late")


def test_timer_fires_at_its_time(host: MemoryHost) -> None:
    instance_id = host.start_new("deadline")
    host.run_until_idle()
    host.advance(299)
    host.run_until_idle()
    assert host.get_status(instance_id).runtime_status is RuntimeStatus.RUNNING

    host.advance(1)
    host.run_until_idle()

    assert host.get_status(instance_id).output == "2024-01-01T00:05:00+00:00"


def test_activity_failure_is_an_exception_the_orchestrator_can_catch(host: MemoryHost) -> None:
    instance_id = host.start_new("forgiving")
    host.run_until_idle()

    status = host.get_status(instance_id)
    assert status.runtime_status is RuntimeStatus.COMPLETED
    assert status.output["fallback"] == 42
    message = status.output["message"]
    assert message.startswith(
        "Activity function 'explode' failed: Result: Failure\n"
        "Exception: ValueError: no such image\nStack: "
    )
    failed = next(e for e in host.get_history(instance_id) if e["EventType"] == 6)
    assert failed["TaskScheduledId"] == 0
    assert json.loads(failed["Details"])["RemoteMessage"] == "ValueError: no such image"


def test_uncaught_orchestrator_exception_fails_the_instance(host: MemoryHost) -> None:
    instance_id = host.start_new("crash")
    host.run_until_idle()

    status = host.get_status(instance_id)
    assert status.runtime_status is RuntimeStatus.FAILED
    assert status.output == "Orchestrator function 'crash' failed: bad input 2"
    completed = host.get_history(instance_id)[-2]
    assert (completed["EventType"], completed["OrchestrationStatus"]) == (1, 3)


def test_custom_status(host: MemoryHost) -> None:
    instance_id = host.start_new("progress")
    host.run_until_idle()
    assert host.get_status(instance_id).custom_status == {"stage": "waiting"}

    host.raise_event(instance_id, "step", 7)
    host.run_until_idle()

    assert host.get_status(instance_id).custom_status == {"stage": "done", "step": 7}


def test_custom_status_over_16_kb_fails_the_instance(host: MemoryHost) -> None:
    instance_id = host.start_new("chatty")
    host.run_until_idle()

    status = host.get_status(instance_id)
    assert status.runtime_status is RuntimeStatus.FAILED
    assert status.output == (
        "Orchestrator function 'chatty' failed: The UTF-16 size of the JSON-serialized "
        "payload must not exceed 16 KB. The current payload size is 17 KB."
    )


def test_call_activity_with_retry(host: MemoryHost) -> None:
    attempts: list[str] = []

    def flaky(payload: str) -> str:
        attempts.append(payload)
        if len(attempts) < 3:
            raise ConnectionError("still failing")
        return f"ok after {len(attempts)}"

    host.register_activity("flaky", flaky)
    instance_id = host.start_new("retrying", input=3)
    host.run_until_idle()
    assert len(attempts) == 1
    host.advance(0.999)
    host.run_until_idle()
    assert len(attempts) == 1  # the retry timer is first_retry_interval long
    host.advance(0.001)
    host.run_until_idle()
    assert len(attempts) == 2
    host.advance(1)
    host.run_until_idle()

    assert host.get_status(instance_id).output == "ok after 3"
    history = host.get_history(instance_id)
    assert scheduled(history) == [
        (4, 0, "flaky"),
        (10, 1, None),
        (4, 2, "flaky"),
        (10, 3, None),
        (4, 4, "flaky"),
    ]
    assert [e["FireAt"] for e in history if e["EventType"] == 10] == [
        "2024-01-01T00:00:01.000000Z",
        "2024-01-01T00:00:02.000000Z",
    ]


def test_call_activity_with_retry_gives_up(host: MemoryHost) -> None:
    host.register_activity(
        "flaky", lambda payload: (_ for _ in ()).throw(ConnectionError("still failing"))
    )
    instance_id = host.start_new("retrying", input=2)
    for _ in range(3):
        host.run_until_idle()
        host.advance(1)
    host.run_until_idle()

    assert host.get_status(instance_id).output == {"gave_up": True}
    # Two attempts, each followed by a retry timer (DTFx waits once more before giving up).
    assert [kind for kind, _, _ in scheduled(host.get_history(instance_id))] == [4, 10, 4, 10]


def test_retry_timers_interleaved_with_other_work_keep_sequence_numbers_in_step(
    host: MemoryHost,
) -> None:
    attempts: dict[str, int] = {}

    def flaky(payload: str) -> str:
        attempts[payload] = attempts.get(payload, 0) + 1
        if attempts[payload] == 1:
            raise ConnectionError("first attempt fails")
        return f"{payload}{attempts[payload]}"

    host.register_activity("flaky", flaky)
    instance_id = host.start_new("retries_in_parallel")
    host.run_until_idle()
    for _ in range(5):
        host.advance(1)
        host.run_until_idle()

    assert host.get_status(instance_id).output == ["a2", 2, "c2"]
    # The fast retry's timer (4) fires first, so its second attempt gets 5, the slow one's 6:
    # had the engine and the SDK numbered them differently, results would be swapped.
    assert scheduled(host.get_history(instance_id)) == [
        (4, 0, "flaky"),
        (4, 1, "double"),
        (4, 2, "flaky"),
        (10, 3, None),
        (10, 4, None),
        (4, 5, "flaky"),
        (4, 6, "flaky"),
    ]


def test_timers_longer_than_six_days_are_split_by_the_sdk(host: MemoryHost) -> None:
    instance_id = host.start_new("week_long")
    host.run_until_idle()
    host.advance(timedelta(days=7).total_seconds() - 1)
    host.run_until_idle()
    assert host.get_status(instance_id).runtime_status is RuntimeStatus.RUNNING

    host.advance(1)
    host.run_until_idle()

    assert host.get_status(instance_id).output == "awake"
    fire_times = [e["FireAt"] for e in host.get_history(instance_id) if e["EventType"] == 10]
    assert fire_times == ["2024-01-04T00:00:00.000000Z", "2024-01-08T00:00:00.000000Z"]


def test_continue_as_new(host: MemoryHost) -> None:
    instance_id = host.start_new("countdown", "cd-1", 0)
    host.run_until_idle()

    status = host.get_status(instance_id)
    assert (status.runtime_status, status.input, status.output) == (RuntimeStatus.COMPLETED, 3, 6)
    history = host.get_history(instance_id)
    assert event_types(history).count(EventType.EXECUTION_STARTED) == 1
    assert history[1]["Input"] == "3"


def test_continue_as_new_decision_resets_the_history() -> None:
    decision = first_episode("countdown", "0")
    assert decision.status is RuntimeStatus.RUNNING
    after = run_episode(
        orchestrator_from_app(app, "countdown"), decision.state, [task_completed(0, "0", T0)], T0
    )
    assert after.status is RuntimeStatus.CONTINUED_AS_NEW
    assert after.state == OrchestrationState("inst", "countdown", "1", [])
    assert (after.activities, after.timers) == ((), ())


def test_start_new_on_a_running_instance_fails(host: MemoryHost) -> None:
    host.start_new("approval", "dup")
    with pytest.raises(InstanceExistsError, match="Pending already exists"):
        host.start_new("approval", "dup")
    host.run_until_idle()
    with pytest.raises(InstanceExistsError, match="Running already exists"):
        host.start_new("approval", "dup")


def test_start_new_on_a_completed_instance_restarts_it(host: MemoryHost) -> None:
    host.start_new("chain", "again", 1)
    host.run_until_idle()
    host.advance(10)

    host.start_new("chain", "again", 5)
    status = host.get_status("again")
    assert (status.runtime_status, status.created_time) == (
        RuntimeStatus.PENDING,
        T0 + timedelta(seconds=10),
    )
    host.run_until_idle()

    assert host.get_status("again").output == 20
    assert event_types(host.get_history("again")).count(EventType.EXECUTION_STARTED) == 1


def test_raise_event_to_a_missing_or_finished_instance(host: MemoryHost) -> None:
    with pytest.raises(InstanceNotFoundError, match="No instance with ID nobody found"):
        host.raise_event("nobody", "approval")
    host.start_new("chain", "finished", 1)
    host.run_until_idle()
    with pytest.raises(InstanceGoneError, match="is gone") as gone:
        host.raise_event("finished", "approval")
    assert gone.value.http_status == 410


def test_terminate(host: MemoryHost) -> None:
    instance_id = host.start_new("approval", "t-1")
    host.run_until_idle()
    host.terminate(instance_id, "operator said so")
    host.run_until_idle()

    status = host.get_status(instance_id)
    assert (status.runtime_status, status.output) == (RuntimeStatus.TERMINATED, "operator said so")
    assert event_types(host.get_history(instance_id))[-4:] == [12, 3, 1, 13]
    with pytest.raises(InstanceGoneError):
        host.terminate(instance_id, "again")
    with pytest.raises(InstanceNotFoundError):
        host.terminate("nobody", "no one")


def test_purge(host: MemoryHost) -> None:
    running = host.start_new("approval", "p-1")
    done = host.start_new("chain", "p-2", 1)
    host.run_until_idle()

    assert host.purge(running) is False
    assert host.purge(done) is True
    assert host.get_status(done) is None
    assert host.purge(done) is False


def test_calling_an_unknown_activity_fails_like_the_extension(host: MemoryHost) -> None:
    instance_id = host.start_new("misnamed")
    host.run_until_idle()

    status = host.get_status(instance_id)
    assert status.runtime_status is RuntimeStatus.FAILED
    assert status.output.startswith(
        "Orchestrator function 'misnamed' failed: The function 'missing' doesn't exist, is "
        "disabled, or is not an activity function. Additional info: The following are the "
        "known activity functions: 'double', "
    )


def test_starting_an_unknown_orchestrator_fails(host: MemoryHost) -> None:
    with pytest.raises(ValueError, match="'nope' doesn't exist"):
        host.start_new("nope")


# -- the app's functions --------------------------------------------------------------------


def test_app_functions_are_found_by_durable_name() -> None:
    functions = app_functions_of(app)
    assert {"chain", "race", "countdown"} <= functions.orchestrators.keys()
    assert {"double", "explode", "shout"} <= functions.activities.keys()
    raw = orchestrator_from_app(app, "chain")
    assert inspect.isgeneratorfunction(raw)
    assert raw.__name__ == "chain"
    with pytest.raises(KeyError, match="no orchestrator 'nope'"):
        orchestrator_from_app(app, "nope")


def test_activities_are_called_like_the_worker_calls_them() -> None:
    shout = app_functions_of(app).activities["shout"]
    assert invoke_activity(shout, '"hi"') == '"HI"'

    async def later(value: dict[str, int]) -> list[int]:
        return sorted(value.values())

    assert invoke_activity(later, '{"b": 2, "a": 1}') == "[1, 2]"


def test_a_renamed_activity_is_called_by_its_function_name(host: MemoryHost) -> None:
    instance_id = host.start_new("loud")
    host.run_until_idle()
    assert host.get_status(instance_id).output == "HI"
