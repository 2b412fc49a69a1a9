"""Faults the platform must survive, end to end: nothing lost, nothing duplicated (SECURITY.md).

Faults are injected at the host (`devhost.faults`, chosen by operation name) or done to it:
a worker killed, the whole host killed and restarted, storage restarted.
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from shared.jobs.processing import OpTask, dispatch_tasks
from tests.e2e.conftest import start_host, wait_until
from tests.fixtures import images

pytestmark = [pytest.mark.azurite, pytest.mark.slow]


def outputs(host, job_id):
    return sorted(
        b.name
        for b in host.runtime()
        .clients.container("results")
        .list_blobs(name_starts_with=f"{job_id}/")
    )


def test_worker_dies_after_writing_before_acknowledging(local_host):
    spec = {"operations": [{"name": "dies-after", "op": "grayscale"}, {"op": "flip"}]}
    job_id = local_host.submit(images.jpeg(), spec).json()["id"]
    job = local_host.wait(job_id)
    assert job["status"] == "succeeded"
    # The message came back after the worker died; its create-only write found the blob
    # already there with the same checksum: one output, not two.
    assert outputs(local_host, job_id) == [
        f"{job_id}/dies-after.jpg",
        f"{job_id}/flip.jpg",
        f"{job_id}/manifest.json",
    ]


def test_worker_killed_mid_operation(local_host):
    spec = {"operations": [{"name": "dies-before", "op": "blur", "radius": 3}]}
    job_id = local_host.submit(images.jpeg(), spec).json()["id"]
    job = local_host.wait(job_id)
    assert job["status"] == "succeeded"
    assert outputs(local_host, job_id) == [f"{job_id}/dies-before.jpg", f"{job_id}/manifest.json"]


def test_an_operation_that_always_fails_is_poisoned_and_the_job_is_partial(local_host):
    spec = {"operations": [{"name": "always-fails", "op": "invert"}, {"op": "sepia"}]}
    job_id = local_host.submit(images.jpeg(), spec).json()["id"]
    job = local_host.wait(job_id, timeout=120)
    assert job["status"] == "partial"
    failed, good = job["operations"]
    assert failed["error"]["code"] == "PROCESSING_FAILED"
    assert good["status"] == "succeeded" and good["output"]["url"]


def test_the_same_messages_delivered_twice(local_host):
    job_id = local_host.submit(images.jpeg(), {"operations": [{"op": "flip"}]}).json()["id"]
    local_host.wait(job_id)
    before = outputs(local_host, job_id)
    rt = local_host.runtime()
    rt.send("jobs", {"jobId": job_id})  # dispatch again: no second fan-out
    job, operations = rt.store.get_with_operations(job_id)
    task = OpTask(
        job_id,
        0,
        "flip",
        operations[0].chain,
        job.source_container,
        job.source_blob,
        job.output_container,
        f"{job_id}/flip.jpg",
        "photo-flip.jpg",
    )
    assert dispatch_tasks(rt, job, operations) == []  # nothing left to do
    rt.send("ops", task.to_message())  # an operation message again
    wait_until(
        lambda: (
            rt.clients.queue("ops").get_queue_properties().approximate_message_count == 0
            and rt.clients.queue("jobs").get_queue_properties().approximate_message_count == 0
        )
    )
    time.sleep(1)
    assert outputs(local_host, job_id) == before
    assert local_host.job(job_id)["status"] == "succeeded"


def test_the_host_killed_and_restarted_mid_job(tmp_path_factory):
    host, azurite = start_host(tmp_path_factory, "restart")
    try:
        spec = {
            "operations": [
                {"op": "blur", "radius": 6},
                {"op": "sharpen"},
                {"op": "resize", "width": 300},
            ]
        }
        job_id = host.submit(images.jpeg(2400, 1800), spec).json()["id"]
        wait_until(lambda: host.job(job_id)["status"] == "running", timeout=30, interval=0.05)
        host.kill()  # host and workers, no clean shutdown
        host.start()
        job = host.wait(job_id, timeout=120)
        assert job["status"] == "succeeded"
        assert len(outputs(host, job_id)) == 4
    finally:
        host.stop()
        azurite.stop()


def test_storage_restarted_mid_job(tmp_path_factory):
    host, azurite = start_host(tmp_path_factory, "storage")
    try:
        spec = {"operations": [{"op": "blur", "radius": 8}, {"op": "emboss"}]}
        job_id = host.submit(images.jpeg(2400, 1800), spec).json()["id"]
        azurite.stop()  # data is on disk (persistent mode)
        time.sleep(2)
        azurite.start()
        job = host.wait(job_id, timeout=120)
        assert job["status"] == "succeeded"
        assert len(outputs(host, job_id)) == 3
    finally:
        host.stop()
        azurite.stop()


@pytest.fixture(scope="module")
def tight_host(tmp_path_factory):
    host, azurite = start_host(
        tmp_path_factory,
        "tight",
        PIXELPIPE_JOB_DEADLINE_SECONDS="4",
        PIXELPIPE_OPERATION_TIMEOUT_SECONDS="1",
    )
    try:
        yield host
    finally:
        host.stop()
        azurite.stop()


def test_an_operation_past_its_time_budget(tight_host):
    slow = {"op": "blur", "radius": 40, "then": [{"op": "blur", "radius": 40}] * 9}
    job_id = tight_host.submit(images.jpeg(4000, 3000), {"operations": [slow]}).json()["id"]
    job = tight_host.wait(job_id)
    assert job["status"] == "failed"
    assert job["operations"][0]["error"]["code"] == "TIMEOUT"


def test_the_job_deadline(tight_host):
    spec = {"operations": [{"op": "flip"}, {"name": "never-finishes", "op": "invert"}]}
    started = time.monotonic()
    job_id = tight_host.submit(images.jpeg(), spec).json()["id"]
    job = tight_host.wait(job_id, timeout=60)
    assert time.monotonic() - started >= 4
    assert job["status"] == "partial"
    assert job["operations"][1]["error"]["code"] == "TIMEOUT"


def test_messages_are_base64_as_the_functions_host_expects(local_host):
    rt = local_host.runtime()
    queue = rt.clients.queue_service.get_queue_client("jobs")  # no decoding policy
    rt.send("jobs", {"jobId": "0" * 32})
    raw = wait_until(lambda: next(iter(queue.peek_messages()), None))
    assert json.loads(base64.b64decode(raw.content)) == {"jobId": "0" * 32}
