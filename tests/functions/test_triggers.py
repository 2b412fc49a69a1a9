"""The queue-triggered functions called as the Functions host calls them: a real
`QueueMessage` and, for the durableClient binding, the JSON the host passes, pointing the
SDK's client at the Durable HTTP API (devhost's, on this Azurite)."""

from __future__ import annotations

import json
import uuid

import pytest
from azure.functions.queue import QueueMessage

import function_app
from devhost.durable.registry import app_functions_of
from devhost.durable.storage import AzuriteDurableHost
from shared.jobs import processing
from shared.jobs.service import JobService, Submission
from shared.jobs.spec import parse_spec
from shared.security.auth import Principal
from tests.devhost.support import DurableApi, drain
from tests.fixtures import images
from tests.functions.helpers import inventory
from tests.support.app import user_function

pytestmark = pytest.mark.azurite

ALICE = Principal("tenant/alice", "alice", "tenant", "alice", "alice")


@pytest.fixture
def durable(rt, api_loop):
    host = AzuriteDurableHost(
        rt.settings.storage_connection,
        app_functions_of(function_app.app),
        hub=f"trig{uuid.uuid4().hex[:12]}",
        lease_seconds=2,
        activity_lease_seconds=2,
        defer_seconds=0,
    )
    api = DurableApi(api_loop, host).start()
    yield host, api
    api.stop()


def message(body: dict, dequeue_count: int = 1) -> QueueMessage:
    return QueueMessage(
        id=uuid.uuid4().hex, body=json.dumps(body).encode(), dequeue_count=dequeue_count
    )


def new_job(rt, operations):
    spec = parse_spec({"operations": operations})
    job, _ = JobService(rt).submit(ALICE, Submission(images.jpeg(), spec, "p.jpg"))
    return job


def dispatch(api, job_id):
    api(user_function("dispatch")(msg=message({"jobId": job_id}), client=api.binding))


def test_dispatch_twice_starts_one_orchestration_and_fans_out_once(rt, durable):
    host, api = durable
    job = new_job(rt, [{"op": "flip"}, {"op": "invert"}, {"op": "sepia"}])
    dispatch(api, job.id)
    dispatch(api, job.id)
    drain(host)
    status = host.get_status(job.id)
    assert status["runtimeStatus"] == "Running"
    assert status["customStatus"] == {"done": 0, "total": 3}
    assert inventory(rt)["queues"]["ops"] == 3
    assert rt.store.get(job.id).dispatched


def run_worker(rt, api, task, *, poisoned=False):
    name = "worker_poison" if poisoned else "worker"
    api(user_function(name)(msg=message(task.to_message()), client=api.binding), timeout=60)


def test_worker_twice_on_one_message_makes_one_output_and_the_job_completes(rt, durable):
    host, api = durable
    job = new_job(rt, [{"op": "grayscale"}])
    dispatch(api, job.id)
    drain(host)
    job, operations = rt.store.get_with_operations(job.id)
    (task,) = processing.dispatch_tasks(rt, job, operations)
    run_worker(rt, api, task)
    run_worker(rt, api, task)  # the same message delivered again
    drain(host)
    assert inventory(rt)["blobs"]["results"] == [task.output_blob, f"{job.id}/manifest.json"]
    status = host.get_status(job.id)
    assert status["runtimeStatus"] == "Completed" and status["output"]["status"] == "succeeded"


def test_poison_marks_the_operation_failed_and_the_job_partial(rt, durable):
    host, api = durable
    job = new_job(rt, [{"op": "flip"}, {"op": "invert"}])
    dispatch(api, job.id)
    drain(host)
    job, operations = rt.store.get_with_operations(job.id)
    good, bad = processing.dispatch_tasks(rt, job, operations)
    run_worker(rt, api, good)
    run_worker(rt, api, bad, poisoned=True)
    drain(host)
    result = host.get_status(job.id)["output"]
    assert result["status"] == "partial"
    assert result["operations"][1]["error"]["code"] == "PROCESSING_FAILED"
    assert JobService(rt).get(ALICE, job.id)["status"] == "partial"


def test_poison_handler_needs_only_the_job_and_index(rt, durable):
    host, api = durable
    job = new_job(rt, [{"op": "flip"}])
    dispatch(api, job.id)
    drain(host)
    garbage = message({"jobId": job.id, "index": 0, "chain": "not a chain"})
    api(user_function("worker_poison")(msg=garbage, client=api.binding))
    drain(host)
    assert host.get_status(job.id)["output"]["status"] == "failed"
