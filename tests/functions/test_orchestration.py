"""The job orchestration, driven through the real durable SDK over several replays.

The orchestrator and activities are the real ones registered by function_app.py; the
in-memory durable host (devhost/durable) feeds the SDK the histories the Durable extension
would, on a controllable clock; finalize and deliver_webhook run against Azurite.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

import function_app
from devhost.durable.memory import MemoryHost
from devhost.durable.registry import orchestrator_from_app
from devhost.durable.replay import OrchestrationState, build_request, invoke_orchestrator
from shared.jobs import processing
from shared.jobs.orchestration import ORCHESTRATOR, event_name
from shared.jobs.service import JobService, Submission
from shared.jobs.spec import parse_spec
from shared.security.auth import Principal
from tests.fixtures import images
from tests.support.loopback import LoopbackServer

pytestmark = pytest.mark.azurite

ALICE = Principal("tenant/alice", "alice", "tenant", "alice", "alice")


@pytest.fixture
def host(rt):
    return MemoryHost.from_app(function_app.app)


def start(rt, host, operations, **spec_extra):
    spec = parse_spec({"operations": operations, **spec_extra})
    job, _ = JobService(rt).submit(ALICE, Submission(images.jpeg(), spec, "p.jpg"))
    job, ops = rt.store.get_with_operations(job.id)
    tasks = processing.dispatch_tasks(rt, job, ops)
    host.start_new(ORCHESTRATOR, job.id, processing.orchestration_input(rt, job))
    return job, tasks


def work(rt, host, task):
    """What the worker trigger does: run the operation, raise op-<index>."""
    outcome = processing.run_operation(rt, task)
    host.raise_event(task.job_id, event_name(task.index), outcome)
    return outcome


def test_all_operations_succeed(rt, host):
    job, tasks = start(rt, host, [{"op": "flip"}, {"op": "grayscale"}, {"op": "invert"}])
    host.run_until_idle()
    status = host.get_status(job.id)
    assert status.runtime_status == "Running" and status.custom_status == {"done": 0, "total": 3}
    for task in tasks:
        work(rt, host, task)
        host.run_until_idle()
    status = host.get_status(job.id)
    assert status.runtime_status == "Completed"
    assert status.custom_status == {"done": 3, "total": 3, "finalized": True}
    result = status.output
    assert result["status"] == "succeeded" and result["progress"] == {"done": 3, "total": 3}
    assert all(o["output"]["url"] for o in result["operations"])
    assert JobService(rt).get(ALICE, job.id)["status"] == "succeeded"


def test_some_operations_fail(rt, host):
    job, tasks = start(
        rt, host, [{"op": "flip"}, {"op": "crop", "x": 9000, "y": 0, "width": 1, "height": 1}]
    )
    for task in tasks:
        work(rt, host, task)
    host.run_until_idle()
    result = host.get_status(job.id).output
    assert result["status"] == "partial"
    assert result["operations"][1]["error"]["code"] == "OPERATION_FAILED"


def test_events_arriving_before_the_orchestrator_waits(rt, host):
    job, tasks = start(rt, host, [{"op": "flip"}, {"op": "invert"}])
    for task in tasks:  # all events raised while the instance is still Pending
        work(rt, host, task)
    host.run_until_idle()
    assert host.get_status(job.id).output["status"] == "succeeded"


def test_a_duplicate_event_changes_nothing(rt, host):
    job, tasks = start(rt, host, [{"op": "flip"}, {"op": "invert"}, {"op": "sepia"}])
    host.run_until_idle()
    first = work(rt, host, tasks[0])
    host.raise_event(job.id, event_name(0), first)  # delivered twice
    host.run_until_idle()
    assert host.get_status(job.id).custom_status == {"done": 1, "total": 3}
    for task in tasks[1:]:
        work(rt, host, task)
    host.run_until_idle()
    status = host.get_status(job.id)
    assert status.runtime_status == "Completed" and status.output["status"] == "succeeded"


def test_the_deadline_fires_first(rt, host):
    job, tasks = start(rt, host, [{"op": "flip"}, {"op": "invert"}])
    host.run_until_idle()
    work(rt, host, tasks[0])
    host.run_until_idle()
    host.advance(rt.settings.job_deadline_seconds + 1)
    host.run_until_idle()
    result = host.get_status(job.id).output
    assert result["status"] == "partial"
    assert result["operations"][1]["error"]["code"] == "TIMEOUT"
    late = processing.run_operation(rt, tasks[1])  # the straggler finishes later ...
    assert late["error"]["code"] == "TIMEOUT"  # ... but the terminal state stands
    assert JobService(rt).get(ALICE, job.id)["status"] == "partial"


def test_nothing_done_by_the_deadline_is_failed(rt, host):
    job, _ = start(rt, host, [{"op": "flip"}])
    host.run_until_idle()
    host.advance(rt.settings.job_deadline_seconds + 1)
    host.run_until_idle()
    assert host.get_status(job.id).output["status"] == "failed"


def test_replays_are_deterministic(rt, host):
    job, tasks = start(rt, host, [{"op": "flip"}, {"op": "invert"}])
    host.run_until_idle()
    work(rt, host, tasks[0])
    host.run_until_idle()
    history = host.get_history(job.id)
    orchestrator = orchestrator_from_app(function_app.app, ORCHESTRATOR)
    state = OrchestrationState(
        job.id, ORCHESTRATOR, json.dumps(processing.orchestration_input(rt, job)), history
    )
    replays = [
        invoke_orchestrator(orchestrator, build_request(state, [], host.now)) for _ in range(3)
    ]
    assert all(r == replays[0] for r in replays[1:])
    assert not replays[0].is_done

    def atoms(actions):
        for action in actions:
            yield action
            yield from atoms(action.get("compoundActions") or [])

    timers = {a["fireAt"] for a in atoms(replays[0].actions) if a["actionType"] == 5}
    assert len(timers) == 1  # one deadline, at the same instant in every replay


def test_webhook_is_delivered_signed(rt, host):
    with LoopbackServer(lambda req: (200, {}, b"ok")) as receiver:
        job, tasks = start(rt, host, [{"op": "flip"}], webhook={"url": f"{receiver.url}/hook"})
        work(rt, host, tasks[0])
        host.run_until_idle()
        (request,) = receiver.requests
    body = request.body
    expected = hmac.new(b"test-webhook-secret", body, hashlib.sha256).hexdigest()
    assert request.headers["x-pixelpipe-signature"] == f"sha256={expected}"
    document = json.loads(body)
    assert document["id"] == job.id and document["status"] == "succeeded"
    record = JobService(rt).get(ALICE, job.id)["webhook"]
    assert record["status"] == "delivered" and record["attempts"] == 1


def test_webhook_retries_with_backoff_then_gives_up(rt, host):
    with LoopbackServer(lambda req: (503, {}, b"down")) as receiver:
        job, tasks = start(rt, host, [{"op": "flip"}], webhook={"url": f"{receiver.url}/hook"})
        work(rt, host, tasks[0])
        host.run_until_idle()
        attempts = [len(receiver.requests)]
        for wait in (2, 4, 8, 16):
            host.advance(wait - 0.5)
            host.run_until_idle()
            attempts.append(len(receiver.requests))  # not yet: the backoff holds
            host.advance(0.5)
            host.run_until_idle()
            attempts.append(len(receiver.requests))
    assert attempts == [1, 1, 2, 2, 3, 3, 4, 4, 5]
    status = host.get_status(job.id)
    assert status.runtime_status == "Completed" and status.output["status"] == "succeeded"
    record = JobService(rt).get(ALICE, job.id)["webhook"]
    assert record["status"] == "failed" and record["attempts"] == 5
    assert record["lastStatusCode"] == 503


def test_no_signing_key_means_no_webhook_is_sent(rt, host, monkeypatch):
    from shared.security.secrets import LocalSecretProvider

    monkeypatch.setattr(rt, "secrets", LocalSecretProvider())  # the key is missing
    with LoopbackServer(lambda req: (200, {}, b"ok")) as receiver:
        job, tasks = start(rt, host, [{"op": "flip"}], webhook={"url": f"{receiver.url}/h"})
        work(rt, host, tasks[0])
        host.run_until_idle()
        assert receiver.requests == []  # never unsigned
    record = JobService(rt).get(ALICE, job.id)["webhook"]
    assert record["status"] == "failed" and "webhook-signing-key" in record["lastError"]
