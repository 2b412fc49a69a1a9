"""The Azure Storage backend itself: state that outlives hosts and Azurite, and the work loop's
crash safety (redelivered messages, dead workers, crashes between writes, competing hosts)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from devhost.azurite import Azurite
from devhost.durable import storage
from devhost.durable.history import EventType, execution_started
from devhost.durable.instances import InstanceExistsError
from devhost.durable.registry import app_functions_of
from devhost.durable.replay import RuntimeStatus
from devhost.durable.storage import (
    AzuriteDurableHost,
    InvalidInstanceIdError,
    UnknownOrchestratorError,
    validate_hub,
)
from tests.devhost import durable_app
from tests.devhost.conftest import HostFactory
from tests.devhost.durable_app import app, calls
from tests.devhost.support import drain, wait_until, workers

pytestmark = [
    pytest.mark.azurite,
    pytest.mark.filterwarnings("ignore:Potential duplicate Task completion:UserWarning"),
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called:DeprecationWarning"),
]


def runtime_status(host: AzuriteDurableHost, instance_id: str) -> str | None:
    status = host.get_status(instance_id)
    return None if status is None else status["runtimeStatus"]


def wait_done(host: AzuriteDurableHost, instance_id: str, timeout: float = 15) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = host.get_status(instance_id)
        return status if status and status["runtimeStatus"] == "Completed" else None

    return wait_until(done, timeout=timeout, what=f"{instance_id} to complete")


def count_events(host: AzuriteDurableHost, instance_id: str, kind: EventType) -> int:
    return sum(1 for e in host.get_history(instance_id) if e["EventType"] == kind)


def queue(azurite: Azurite, name: str) -> QueueClient:
    return QueueClient.from_connection_string(azurite.connection_string, name)


def resend_copies(azurite: Azurite, host: AzuriteDurableHost, *, copies: int = 1) -> list[str]:
    """Re-send the bodies of the visible control messages (a redelivery, as the queue sees
    it: new queue message ids, same content)."""
    control = queue(azurite, host.names.control_queue)
    bodies = [m.content for m in control.peek_messages(max_messages=32)]
    for body in bodies:
        for _ in range(copies):
            control.send_message(body)
    return bodies


def key() -> str:
    return uuid.uuid4().hex


# -- resources ------------------------------------------------------------------------------


def test_resources_are_named_after_the_hub(
    azurite: Azurite, make_host: HostFactory, hub: str
) -> None:
    host = make_host()
    names = host.names
    assert (names.table, names.container, names.control_queue, names.workitem_queue) == (
        f"{hub}Instances",
        f"{hub}-durable",
        f"{hub}-control",
        f"{hub}-workitems",
    )
    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    assert names.table in {t.name for t in tables.list_tables()}
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    assert names.container in {c.name for c in blobs.list_containers()}
    for name in (names.control_queue, names.workitem_queue):
        assert queue(azurite, name).get_queue_properties().name == name
    make_host()  # a second host finds them in place
    for bad in ("ab", "1hub", "my-hub", "x" * 46):
        with pytest.raises(ValueError, match="invalid task hub name"):
            validate_hub(bad)


def test_client_rules(host: AzuriteDurableHost) -> None:
    with pytest.raises(UnknownOrchestratorError, match="doesn't exist"):
        host.start_new("nope")
    for bad in ("a/b", "a#b", "q?", "@entity", "tab\there", "x" * 257):
        with pytest.raises(InvalidInstanceIdError):
            host.start_new("chain", bad, "1")
    assert host.start_new("CHAIN", "case", "1") == "case"  # names are case-insensitive
    assert host.get_status("case")["name"] == "chain"
    with pytest.raises(InstanceExistsError, match="already exists"):
        host.start_new("chain", "case", "1")
    assert host.get_status("missing") is None
    assert not host.purge("case")  # still pending


# -- state outlives the host and Azurite -----------------------------------------------------


def test_a_fresh_host_continues_in_flight_orchestrations(make_host: HostFactory) -> None:
    first = make_host()
    chained = first.start_new("chain", None, "5")
    sleeping = first.start_new("sleeper", None, "1")
    first.process_orchestrations()  # both first episodes: an activity and a timer in flight
    first.process_activities()  # the activity ran; its result waits in the control queue
    assert runtime_status(first, chained) == "Running"
    del first  # the devhost restarts

    second = make_host()
    with workers(second):
        assert wait_done(second, chained)["output"] == {"first": 10, "second": 20}
        assert wait_done(second, sleeping)["output"] >= 1.0
    assert count_events(second, chained, EventType.TASK_COMPLETED) == 2


def test_state_survives_an_azurite_restart(tmp_path: Path, hub: str) -> None:
    azurite = Azurite.on_free_ports(location=tmp_path / "azurite").start()
    try:
        functions = app_functions_of(app)
        host = AzuriteDurableHost(azurite.connection_string, functions, hub=hub)
        instance_id = host.start_new("waits", None, None)
        drain(host)
        host.raise_event(instance_id, "a", '"early"')
        azurite.restart()
        host = AzuriteDurableHost(azurite.connection_string, functions, hub=hub)
        assert runtime_status(host, instance_id) == "Running"
        host.raise_event(instance_id, "b", '"late"')
        drain(host)
        assert host.get_status(instance_id)["output"] == ["early", "late"]
    finally:
        azurite.stop()


# -- redelivery and dedupe -------------------------------------------------------------------


def test_a_redelivered_start_event_or_result_is_applied_once(
    azurite: Azurite, host: AzuriteDurableHost
) -> None:
    waiting = host.start_new("waits")
    resend_copies(azurite, host, copies=2)  # the ExecutionStarted, twice more
    drain(host)
    assert count_events(host, waiting, EventType.EXECUTION_STARTED) == 1

    host.raise_event(waiting, "a", '"once"')
    resend_copies(azurite, host)
    host.process_orchestrations(max_messages=1)  # the original ...
    host.process_orchestrations(max_messages=1)  # ... and its copy, in another episode
    assert count_events(host, waiting, EventType.EVENT_RAISED) == 1
    host.raise_event(waiting, "b", '"twice?"')
    drain(host)
    assert host.get_status(waiting)["output"] == ["once", "twice?"]

    chained = host.start_new("chain", None, "1")
    host.process_orchestrations()
    host.process_activities()  # TaskCompleted(0) queued
    resend_copies(azurite, host)
    host.process_orchestrations()  # both copies in one batch
    assert count_events(host, chained, EventType.TASK_COMPLETED) == 1
    drain(host)
    assert host.get_status(chained)["output"] == {"first": 2, "second": 4}
    assert count_events(host, chained, EventType.TASK_COMPLETED) == 2


def test_messages_for_a_superseded_execution_are_dropped(
    azurite: Azurite, host: AzuriteDurableHost
) -> None:
    instance_id = host.start_new("waits", "again")
    old_start = resend_copies(azurite, host, copies=0)[0]
    drain(host)
    host.raise_event(instance_id, "a", '"old"')
    old_event = resend_copies(azurite, host, copies=0)[0]
    drain(host)
    host.terminate(instance_id, "restarting")
    drain(host)
    host.start_new("waits", "again")
    drain(host)
    control = queue(azurite, host.names.control_queue)
    control.send_message(old_event)
    control.send_message(old_start)
    drain(host)
    assert runtime_status(host, instance_id) == "Running"
    history = host.get_history(instance_id)
    assert [e["EventType"] for e in history].count(EventType.EVENT_RAISED) == 0
    assert [e["EventType"] for e in history].count(EventType.EXECUTION_STARTED) == 1


def test_events_taken_before_the_start_message_are_deferred(
    azurite: Azurite, host: AzuriteDurableHost
) -> None:
    instance_id = host.start_new("waits")
    host.raise_event(instance_id, "a", "1")
    host.raise_event(instance_id, "b", "2")
    # Another worker holds the start message for a second...
    taken = list(queue(azurite, host.names.control_queue).receive_messages(visibility_timeout=1))
    assert json.loads(taken[0].content)["event"]["EventType"] == EventType.EXECUTION_STARTED
    # ... so this one sees the events of an instance that has not started: they wait.
    assert host.process_orchestrations() == 0
    assert runtime_status(host, instance_id) == "Pending"
    with workers(host):
        assert wait_done(host, instance_id)["output"] == [1, 2]


def test_a_start_message_whose_row_was_never_written_starts_the_instance(
    host: AzuriteDurableHost,
) -> None:
    """`start_new` sends the message first; if the client dies before writing the row, the
    work loop creates the instance from the message."""
    now = host.now()
    event = execution_started(
        name="chain", input_json="2", instance_id="orphan", execution_id="e1", timestamp=now
    )
    host._send_control("orphan", "e1", event)
    drain(host)
    assert host.get_status("orphan")["output"] == {"first": 4, "second": 8}
    # the same for a restart of the finished instance
    later = execution_started(
        name="chain", input_json="3", instance_id="orphan", execution_id="e2", timestamp=host.now()
    )
    host._send_control("orphan", "e2", later)
    drain(host)
    assert host.get_status("orphan")["output"] == {"first": 6, "second": 12}


# -- dead workers and crashes ----------------------------------------------------------------


def test_start_new_racing_the_work_loop_for_its_own_start_message(
    make_host: HostFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart whose start message a worker takes (and leases the row for) before
    `start_new` writes the row: the client waits for that episode instead of reporting a
    conflict with itself."""
    client, worker = make_host(), make_host()
    client.start_new("chain", "race", "1")
    drain(worker)
    real_episode = storage.run_episode

    def slow_episode(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)
        return real_episode(*args, **kwargs)

    monkeypatch.setattr(storage, "run_episode", slow_episode)
    real_send = client._send_control
    racing: list[threading.Thread] = []

    def send_and_race(*args: Any) -> Any:
        sent = real_send(*args)
        racing.append(threading.Thread(target=worker.process_orchestrations))
        racing[0].start()
        wait_until(lambda: client._read_row("race").lease_owner, what="the worker's lease")
        return sent

    monkeypatch.setattr(client, "_send_control", send_and_race)
    assert client.start_new("chain", "race", "2") == "race"
    racing[0].join()
    drain(worker)
    assert client.get_status("race")["output"] == {"first": 4, "second": 8}


def test_an_activity_whose_worker_dies_is_retried_after_its_lease(
    azurite: Azurite, make_host: HostFactory
) -> None:
    host = make_host(activity_lease_seconds=2)
    tally = key()
    instance_id = host.start_new("one_tally", None, json.dumps(tally))
    host.process_orchestrations()
    # A worker takes the work item and dies without a word.
    workitems = queue(azurite, host.names.workitem_queue)
    assert len(list(workitems.receive_messages(visibility_timeout=2))) == 1
    died = time.monotonic()
    with workers(host):
        status = wait_done(host, instance_id)
    assert time.monotonic() - died >= 1.5
    assert status["output"] == f"tallied {tally}"
    assert calls[tally] == 1
    assert count_events(host, instance_id, EventType.TASK_COMPLETED) == 1


def run_worker_process(connection_string: str, hub: str) -> None:
    """A devhost worker process: the test app's functions, 2-second leases, forever."""
    host = AzuriteDurableHost(
        connection_string,
        app_functions_of(app),
        hub=hub,
        lease_seconds=2,
        activity_lease_seconds=2,
    )
    host.run_until(threading.Event(), idle_seconds=0.02)


def test_a_worker_process_killed_mid_activity_leaves_it_to_another(
    azurite: Azurite, hub: str, make_host: HostFactory, tmp_path: Path
) -> None:
    notes = tmp_path / "notes"
    host = make_host(lease_seconds=2, activity_lease_seconds=2)
    instance_id = host.start_new("one_note", None, json.dumps(str(notes)))
    child = multiprocessing.get_context("spawn").Process(
        target=run_worker_process, args=(azurite.connection_string, hub), daemon=True
    )
    child.start()
    try:
        wait_until(lambda: notes.exists() and "start" in notes.read_text(), timeout=30)
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)  # mid-activity
    finally:
        child.join(10)
    with workers(host):
        status = wait_done(host, instance_id)
    assert status["output"] == "noted"
    assert notes.read_text().split() == ["start", "start", "end"]
    assert count_events(host, instance_id, EventType.TASK_COMPLETED) == 1


def test_a_worker_that_dies_after_reporting_runs_again_but_completes_once(
    make_host: HostFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = make_host(activity_lease_seconds=1)
    tally = key()
    instance_id = host.start_new("one_tally", None, json.dumps(tally))
    host.process_orchestrations()
    real_delete = host._delete_message
    dropped: list[str] = []

    def delete_message(queue_client: QueueClient, message_id: str, receipt: str | None) -> None:
        if queue_client is host._workitems and not dropped:
            dropped.append(message_id)  # the worker dies before deleting its work item
            return
        real_delete(queue_client, message_id, receipt)

    monkeypatch.setattr(host, "_delete_message", delete_message)
    with workers(host):
        wait_until(lambda: calls[tally] == 2, what="the activity to run again")
        status = wait_done(host, instance_id)
    assert status["output"] == f"tallied {tally}"
    assert count_events(host, instance_id, EventType.TASK_COMPLETED) == 1


def test_a_crash_between_dispatch_and_commit_loses_nothing(
    make_host: HostFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = make_host(lease_seconds=2)
    tally = key()
    instance_id = host.start_new("one_tally", None, json.dumps(tally))
    real_commit = host._commit
    crashes: list[int] = []

    def commit(*args: Any) -> bool:
        if not crashes:
            crashes.append(1)
            raise RuntimeError("the process died before its commit")
        return real_commit(*args)

    monkeypatch.setattr(host, "_commit", commit)
    with workers(host):
        status = wait_done(host, instance_id)
    assert crashes
    assert status["output"] == f"tallied {tally}"
    assert calls[tally] == 2  # dispatched by both runs of the first episode: at least once
    assert count_events(host, instance_id, EventType.TASK_SCHEDULED) == 1
    assert count_events(host, instance_id, EventType.TASK_COMPLETED) == 1


def test_a_crash_between_commit_and_delete_duplicates_nothing(
    make_host: HostFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = make_host(lease_seconds=1)
    tally = key()
    instance_id = host.start_new("one_tally", None, json.dumps(tally))
    real_consume = host._consume
    skipped: list[int] = []

    def consume(messages: Any) -> None:
        messages = list(messages)
        if messages and not skipped:
            skipped.append(len(messages))  # committed, then died before deleting
            return
        real_consume(messages)

    monkeypatch.setattr(host, "_consume", consume)
    host.process_orchestrations()
    assert skipped and runtime_status(host, instance_id) == "Running"
    with workers(host):
        status = wait_done(host, instance_id)
        time.sleep(1.5)  # the undeleted start message reappears: dropped
    assert status["output"] == f"tallied {tally}"
    assert calls[tally] == 1
    assert count_events(host, instance_id, EventType.EXECUTION_STARTED) == 1
    assert queue_is_empty(host)


def queue_is_empty(host: AzuriteDurableHost) -> bool:
    return not list(host._control.peek_messages()) and not list(host._workitems.peek_messages())


def test_an_orchestrator_the_app_no_longer_has_fails_the_instance(make_host: HostFactory) -> None:
    before = make_host()
    instance_id = before.start_new("chain", None, "1")
    after = make_host(orchestrators={}, activities={"double": durable_app.double})
    drain(after)
    status = after.get_status(instance_id)
    assert status["runtimeStatus"] == "Failed"
    assert "The function 'chain' doesn't exist" in status["output"]


# -- competing hosts -------------------------------------------------------------------------


@pytest.fixture
def episode_tracker(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Wraps the engine to record concurrent episodes per instance and who ran them."""
    lock = threading.Lock()
    active: Counter[str] = Counter()
    record: dict[str, Any] = {"max": 0, "threads": set(), "episodes": 0}
    real = storage.run_episode

    def tracked(orchestrator: Any, state: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            active[state.instance_id] += 1
            record["max"] = max(record["max"], active[state.instance_id])
            record["threads"].add(threading.current_thread().name)
            record["episodes"] += 1
        try:
            time.sleep(0.02)  # widen the window for a competing episode
            return real(orchestrator, state, *args, **kwargs)
        finally:
            with lock:
                active[state.instance_id] -= 1

    monkeypatch.setattr(storage, "run_episode", tracked)
    yield record


def test_two_hosts_never_run_two_episodes_of_one_instance_at_once(
    make_host: HostFactory, episode_tracker: dict[str, Any]
) -> None:
    hosts = [make_host(), make_host()]
    prefix = key()
    instances = [
        hosts[0].start_new("tallies", None, json.dumps({"key": f"{prefix}-{i}", "n": 4}))
        for i in range(3)
    ]
    with workers(*hosts, threads=2, name="host"):
        for i, instance_id in enumerate(instances):
            hosts[i % 2].raise_event(instance_id, "x", str(i))
            hosts[(i + 1) % 2].raise_event(instance_id, "y", json.dumps(f"y{i}"))
        results = [wait_done(hosts[0], instance_id, timeout=30) for instance_id in instances]
    assert [r["output"] for r in results] == [
        {"sum": 12, "x": i, "y": f"y{i}"} for i in range(len(instances))
    ]
    assert episode_tracker["max"] == 1
    assert {name.split("-")[0] for name in episode_tracker["threads"]} == {"host0", "host1"}
    tallied = {k: v for k, v in calls.items() if k.startswith(prefix)}
    assert tallied == {f"{prefix}-{i}-{j}": 1 for i in range(3) for j in range(4)}


# -- payloads beyond the table's and the queue's limits --------------------------------------


def test_a_small_state_lives_in_the_row_and_moves_to_a_blob_when_it_grows(
    azurite: Azurite, host: AzuriteDurableHost
) -> None:
    container = BlobServiceClient.from_connection_string(
        azurite.connection_string
    ).get_container_client(host.names.container)
    instance_id = host.start_new("chain", None, "3")
    drain(host)
    assert wait_done(host, instance_id)["runtimeStatus"] == "Completed"
    assert count_events(host, instance_id, EventType.TASK_COMPLETED) == 2
    assert host.get_status(instance_id)["output"] == {"first": 6, "second": 12}
    assert not list(container.list_blobs())  # every episode: one row write, no blob
    # The same instance with a state too large for a row: a blob, and the row's copy goes.
    big = host.start_new("big", None, json.dumps("p" * 40_000))
    drain(host)
    host.raise_event(big, "big", json.dumps("e" * 10))
    drain(host)
    assert host.get_status(big)["runtimeStatus"] == "Completed"
    assert len(list(container.list_blobs(name_starts_with="instances/"))) == 1


def test_large_inputs_outputs_and_events_go_through_blobs(
    azurite: Azurite, host: AzuriteDurableHost
) -> None:
    payload = "p" * 40_000  # over a table property and, as JSON, over 32 KB of message
    instance_id = host.start_new("big", None, json.dumps(payload))
    assert host.get_status(instance_id)["input"] == payload
    drain(host)
    host.raise_event(instance_id, "big", json.dumps("e" * 70_000))
    drain(host)
    status = host.get_status(instance_id)
    assert status["output"] == {"input": 40_000, "echoed": 80_000, "event": 70_000}
    assert status["input"] == payload
    container = BlobServiceClient.from_connection_string(
        azurite.connection_string
    ).get_container_client(host.names.container)
    assert not list(container.list_blobs(name_starts_with="messages/"))  # cleaned up
    assert len(list(container.list_blobs(name_starts_with="instances/"))) == 1
    assert host.purge(instance_id)
    assert not list(container.list_blobs())


def test_history_is_shown_like_the_extension_shows_it(host: AzuriteDurableHost) -> None:
    instance_id = host.start_new("forgiving")
    drain(host)
    shown = host.get_status(instance_id, show_history=True, show_history_output=True)
    events = shown["historyEvents"]
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        "TaskFailed",
        "ExecutionCompleted",
    ]
    assert events[1]["FunctionName"] == "explode"
    assert "ValueError: boom" in events[1]["Reason"]
    assert events[2]["Result"] == {"caught": True}
    assert RuntimeStatus(shown["runtimeStatus"]) is RuntimeStatus.COMPLETED
