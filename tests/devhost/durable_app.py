"""Small orchestrators and activities for the Durable backend tests (a test DFApp)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df

Context = df.DurableOrchestrationContext
Orchestration = Generator[Any, Any, Any]

app = df.DFApp()

calls: Counter[str] = Counter()
"""How often each `tally` key ran (activities run in worker threads: use `count`)."""
_calls_lock = threading.Lock()


def count(key: str) -> None:
    with _calls_lock:
        calls[key] += 1


# -- activities -----------------------------------------------------------------------------


@app.activity_trigger(input_name="n")
def double(n: int) -> int:
    return n * 2


@app.activity_trigger(input_name="key")
def tally(key: str) -> str:
    count(key)
    return f"tallied {key}"


@app.activity_trigger(input_name="path")
def slow_note(path: str) -> str:
    """Notes "start" in the file at `path`, takes a second and a half, notes "end"."""
    log = Path(path)
    with log.open("a") as out:
        out.write("start\n")
    time.sleep(1.5)
    with log.open("a") as out:
        out.write("end\n")
    return "noted"


@app.activity_trigger(input_name="message")
def explode(message: str) -> None:
    raise ValueError(message)


# -- orchestrators --------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def chain(context: Context) -> Orchestration:
    context.set_custom_status({"stage": "first"})
    first = yield context.call_activity("double", context.get_input())
    context.set_custom_status({"stage": "second", "first": first})
    second = yield context.call_activity("double", first)
    context.set_custom_status({"stage": "done"})
    return {"first": first, "second": second}


@app.orchestration_trigger(context_name="context")
def two_events(context: Context) -> Orchestration:
    """Sleeps a second (so early events are buffered), then waits for "a" and "b"."""
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=1))
    a = yield context.wait_for_external_event("a")
    b = yield context.wait_for_external_event("b")
    return [a, b]


@app.orchestration_trigger(context_name="context")
def waits(context: Context) -> Orchestration:
    """Waits for "a" and "b" from the start."""
    a = yield context.wait_for_external_event("a")
    b = yield context.wait_for_external_event("b")
    return [a, b]


@app.orchestration_trigger(context_name="context")
def sleeper(context: Context) -> Orchestration:
    started = context.current_utc_datetime
    yield context.create_timer(started + timedelta(seconds=context.get_input()))
    return (context.current_utc_datetime - started).total_seconds()


@app.orchestration_trigger(context_name="context")
def race(context: Context) -> Orchestration:
    """An event "go" against a timer of `input` seconds."""
    timer = context.create_timer(
        context.current_utc_datetime + timedelta(seconds=context.get_input())
    )
    go = context.wait_for_external_event("go")
    winner = yield context.task_any([go, timer])
    if winner is timer:
        return "timeout"
    timer.cancel()
    return {"event": go.result}


@app.orchestration_trigger(context_name="context")
def one_tally(context: Context) -> Orchestration:
    result = yield context.call_activity("tally", context.get_input())
    return result


@app.orchestration_trigger(context_name="context")
def one_note(context: Context) -> Orchestration:
    return (yield context.call_activity("slow_note", context.get_input()))


@app.orchestration_trigger(context_name="context")
def tallies(context: Context) -> Orchestration:
    """`n` tallies one after the other, then a fan-out of `n` doubles and two events."""
    spec = context.get_input()
    key, n = spec["key"], spec["n"]
    for i in range(n):
        yield context.call_activity("tally", f"{key}-{i}")
    doubled = yield context.task_all([context.call_activity("double", i) for i in range(n)])
    x = yield context.wait_for_external_event("x")
    y = yield context.wait_for_external_event("y")
    return {"sum": sum(doubled), "x": x, "y": y}


@app.orchestration_trigger(context_name="context")
def forgiving(context: Context) -> Orchestration:
    try:
        yield context.call_activity("explode", "boom")
    except Exception as exc:
        return {"caught": "boom" in str(exc)}
    return None


@app.orchestration_trigger(context_name="context")
def crash(context: Context) -> Orchestration:
    yield context.call_activity("double", 1)
    raise RuntimeError("the orchestrator broke")


@app.orchestration_trigger(context_name="context")
def countdown(context: Context) -> Orchestration:
    n = context.get_input()
    yield context.call_activity("double", n)
    if n < 2:
        context.continue_as_new(n + 1)
        return None
    return n


@app.orchestration_trigger(context_name="context")
def big(context: Context) -> Orchestration:
    """Echoes its (large) input through an activity and an event."""
    payload = context.get_input()
    echoed = yield context.call_activity("double", payload)
    event = yield context.wait_for_external_event("big")
    return {"input": len(payload), "echoed": len(echoed), "event": len(event)}
