"""Dispatch, worker, poison, finalize and blob drops on a real Azurite (no orchestration here:
the orchestration tests drive the same steps through the durable SDK)."""

from __future__ import annotations

import io
import json

import pytest
import requests
from PIL import Image

from shared.errors import ProcessingFailed, Unavailable
from shared.jobs import processing
from shared.jobs.ingest import BLOB_DROP_OWNER, blob_job_id, ingest_blob
from shared.jobs.model import JobStatus
from shared.jobs.processing import OpTask
from shared.jobs.service import JobService, Submission
from shared.jobs.spec import parse_spec
from shared.security.auth import Principal
from shared.storage.clients import INBOX, OPS_QUEUE, OUTBOX, QUARANTINE, RESULTS
from tests.fixtures import images
from tests.functions.helpers import inventory

pytestmark = pytest.mark.azurite

ALICE = Principal("tenant/alice", "alice", "tenant", "alice", "alice")


def new_job(rt, operations, data=None, **spec_extra):
    spec = parse_spec({"operations": operations, **spec_extra})
    job, _ = JobService(rt).submit(ALICE, Submission(data or images.jpeg(), spec, "holiday.jpg"))
    return job


def tasks_of(rt, job):
    job, operations = rt.store.get_with_operations(job.id)
    return job, processing.dispatch_tasks(rt, job, operations)


def test_dispatch_fans_out_once(rt):
    job = new_job(rt, [{"op": "flip"}, {"op": "resize", "width": 50, "format": "webp"}])
    job, tasks = tasks_of(rt, job)
    assert [t.output_blob for t in tasks] == [f"{job.id}/flip.jpg", f"{job.id}/resize.webp"]
    assert [t.filename for t in tasks] == ["holiday-flip.jpg", "holiday-resize.webp"]
    job = processing.enqueue(rt, job, tasks)
    assert job.dispatched and job.status is JobStatus.RUNNING
    processing.enqueue(rt, job, tasks)  # a repeated dispatch message
    assert inventory(rt)["queues"]["ops"] == 2
    messages = [
        json.loads(m.content)
        for m in rt.clients.queue(OPS_QUEUE).receive_messages(messages_per_page=10)
    ]
    assert sorted((OpTask.from_message(m) for m in messages), key=lambda t: t.index) == tasks


def test_a_large_fan_out_sends_every_message_once_and_reports_a_failed_send(rt):
    from azure.core.exceptions import ResourceNotFoundError

    ops = [{"op": "resize", "width": 10 + i, "name": f"r{i}"} for i in range(20)]
    job, tasks = tasks_of(rt, new_job(rt, ops))
    processing.enqueue(rt, job, tasks)  # 20 messages, sent side by side
    received = []
    queue = rt.clients.queue(OPS_QUEUE)
    while batch := list(queue.receive_messages(messages_per_page=32, max_messages=32)):
        received += [OpTask.from_message(json.loads(m.content)).index for m in batch]
    assert sorted(received) == list(range(20))
    with pytest.raises(ResourceNotFoundError):  # the dispatch fails, so its message returns
        rt.send_many("no-such-queue", [{"n": i} for i in range(3)])


def test_worker_runs_an_operation_and_records_it(rt):
    job = new_job(rt, [{"op": "resize", "width": 64}])
    _, (task,) = tasks_of(rt, job)
    outcome = processing.run_operation(rt, task)
    assert outcome["status"] == "succeeded"
    output = outcome["output"]
    assert (output["width"], output["height"], output["format"]) == (64, 48, "jpeg")
    data = rt.plain_blobs.get(RESULTS, task.output_blob)
    assert Image.open(io.BytesIO(data)).size == (64, 48)
    props = rt.plain_blobs.properties(RESULTS, task.output_blob)
    assert props.content_settings.content_type == "image/jpeg"
    assert "holiday-resize.jpg" in props.content_settings.content_disposition
    op = rt.store.get_operation(job.id, 0)
    assert op.status.value == "succeeded" and op.output.sha256 == output["sha256"]


def test_worker_twice_on_one_message_makes_one_output(rt):
    job = new_job(rt, [{"op": "grayscale"}])
    _, (task,) = tasks_of(rt, job)
    first = processing.run_operation(rt, task)
    second = processing.run_operation(rt, task)
    assert first == second
    assert inventory(rt)["blobs"]["results"] == [task.output_blob]


def test_worker_killed_after_writing_before_recording(rt):
    """The output exists, the row still says queued: the retry's create-only write gets 409
    with a matching checksum and counts as success (SECURITY.md faults 1 and 2)."""
    job = new_job(rt, [{"op": "invert"}])
    _, (task,) = tasks_of(rt, job)
    result = processing.run(
        rt.private_blobs.get(task.source_container, task.source_blob),
        task.chain,
        limits=rt.settings.limits(),
    )
    written = rt.plain_blobs.put(
        RESULTS, task.output_blob, result.data, content_type=result.content_type
    )
    assert written.created
    outcome = processing.run_operation(rt, task)
    assert outcome["status"] == "succeeded"
    assert outcome["output"]["sha256"] == written.sha256
    assert inventory(rt)["blobs"]["results"] == [task.output_blob]


def test_permanent_failure_is_recorded_not_retried(rt):
    job = new_job(rt, [{"op": "crop", "x": 5000, "y": 0, "width": 10, "height": 10}])
    _, (task,) = tasks_of(rt, job)
    outcome = processing.run_operation(rt, task)
    assert outcome == {
        "status": "failed",
        "error": {
            "code": "OPERATION_FAILED",
            "message": "The crop region starts at (5000, 0), outside the 640x480 image.",
        },
    }
    assert not inventory(rt)["blobs"]["results"]


def test_transient_failure_raises_for_a_retry(rt, monkeypatch):
    job = new_job(rt, [{"op": "invert"}])
    _, (task,) = tasks_of(rt, job)

    def storage_down(*args, **kwargs):
        raise Unavailable("storage is having a moment")

    monkeypatch.setattr(rt.private_blobs, "get", storage_down)
    with pytest.raises(Unavailable):
        processing.run_operation(rt, task)
    assert rt.store.get_operation(job.id, 0).status.value == "queued"


def test_poison_then_finalize_gives_partial(rt):
    job = new_job(rt, [{"op": "flip"}, {"op": "invert"}])
    _, (good, bad) = tasks_of(rt, job)
    processing.run_operation(rt, good)
    poisoned = processing.fail_operation(rt, bad.job_id, bad.index, ProcessingFailed())
    assert poisoned["error"]["code"] == "PROCESSING_FAILED"
    document = processing.finalize(rt, job.id, timed_out=False)
    assert document["status"] == "partial" and document["completedAt"]
    assert document["operations"][0]["output"]["url"].startswith("http://127.0.0.1")
    assert document["operations"][1]["error"]["code"] == "PROCESSING_FAILED"
    manifest = json.loads(rt.plain_blobs.get(RESULTS, f"{job.id}/manifest.json"))
    assert manifest["status"] == "partial" and len(manifest["operations"]) == 2
    again = processing.finalize(rt, job.id, timed_out=False)  # a repeated activity
    assert again["completedAt"] == document["completedAt"]


def test_finalize_after_deadline_times_out_the_rest(rt):
    job = new_job(rt, [{"op": "flip"}, {"op": "invert"}, {"op": "sepia"}])
    _, tasks = tasks_of(rt, job)
    processing.run_operation(rt, tasks[0])
    document = processing.finalize(rt, job.id, timed_out=True)
    assert document["status"] == "partial"
    assert [o["status"] for o in document["operations"]] == ["succeeded", "failed", "failed"]
    assert document["operations"][2]["error"]["code"] == "TIMEOUT"
    late = processing.run_operation(rt, tasks[1])  # a worker finishing after the deadline
    assert late["error"]["code"] == "TIMEOUT"  # the terminal state stands
    assert processing.finalize(rt, job.id, timed_out=True)["status"] == "partial"


def test_all_failed_is_failed_and_all_good_is_succeeded(rt):
    job = new_job(rt, [{"op": "crop", "x": 9999, "y": 0, "width": 1, "height": 1}])
    _, (task,) = tasks_of(rt, job)
    processing.run_operation(rt, task)
    assert processing.finalize(rt, job.id, timed_out=False)["status"] == "failed"
    job = new_job(rt, [{"op": "flip"}])
    _, (task,) = tasks_of(rt, job)
    processing.run_operation(rt, task)
    assert processing.finalize(rt, job.id, timed_out=False)["status"] == "succeeded"


def test_output_link_serves_the_output_as_a_download(rt):
    job = new_job(rt, [{"op": "thumbnail", "size": 32, "format": "png"}])
    _, (task,) = tasks_of(rt, job)
    processing.run_operation(rt, task)
    link = processing.finalize(rt, job.id, timed_out=False)["operations"][0]["output"]["url"]
    response = requests.get(link, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert Image.open(io.BytesIO(response.content)).size == (32, 24)
    assert (
        requests.put(
            link, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10
        ).status_code
        == 403
    )


# -- blob drops --------------------------------------------------------------------------------


def drop(rt, name, data, **metadata):
    rt.clients.container(INBOX).upload_blob(name, data, metadata=metadata or None)


def test_blob_drop_starts_a_job_once(rt):
    drop(rt, "shoot/beach.jpg", images.jpeg(), pixelpipe_preset="avatar")
    etag = rt.plain_blobs.properties(INBOX, "shoot/beach.jpg").etag
    job = ingest_blob(rt, "shoot/beach.jpg")
    assert job is not None and job.id == blob_job_id("shoot/beach.jpg", etag)
    assert job.owner == BLOB_DROP_OWNER and job.origin == "blob"
    assert (job.output_container, job.output_prefix) == (OUTBOX, "shoot/beach/")
    assert ingest_blob(rt, "shoot/beach.jpg") is None  # a repeated event
    state = inventory(rt)
    assert state["blobs"]["inbox"] == [] and state["queues"]["jobs"] == 1
    job, tasks = tasks_of(rt, job)
    assert [t.output_blob for t in tasks] == [
        "shoot/beach/avatar-512.webp",
        "shoot/beach/avatar-128.webp",
    ]
    for task in tasks:
        processing.run_operation(rt, task)
    processing.finalize(rt, job.id, timed_out=False)
    assert inventory(rt)["blobs"]["outbox"] == [
        "shoot/beach/avatar-128.webp",
        "shoot/beach/avatar-512.webp",
        "shoot/beach/manifest.json",
    ]


def test_blob_drop_spec_from_metadata(rt):
    drop(
        rt,
        "x.png",
        images.png(),
        pixelpipe_spec=json.dumps({"operations": [{"op": "grayscale", "name": "bw"}]}),
    )
    job = ingest_blob(rt, "x.png")
    assert [o["name"] for o in job.spec["operations"]] == ["bw"]


@pytest.mark.parametrize(
    ("name", "data", "metadata", "code"),
    [
        ("notes.txt", b"hello, not an image", {}, "UNSUPPORTED_MEDIA_TYPE"),
        ("broken.jpg", images.truncated_jpeg(), {}, "IMAGE_CORRUPT"),
        ("bomb.png", images.png_header_only(20000, 20000), {}, "IMAGE_TOO_LARGE"),
        ("badspec.jpg", images.jpeg(), {"pixelpipe_spec": "{nope"}, "INVALID_SPEC"),
    ],
)
def test_bad_blob_drop_is_quarantined_and_starts_nothing(rt, name, data, metadata, code):
    drop(rt, name, data, **metadata)
    assert ingest_blob(rt, name) is None
    state = inventory(rt)
    assert state["blobs"]["inbox"] == [] and not state["rows"]["jobs"]
    assert not any(state["queues"].values())
    quarantined = state["blobs"][QUARANTINE]
    assert len(quarantined) == 2 and quarantined[1].endswith(f"{name}.error.json")
    record = json.loads(rt.private_blobs.get(QUARANTINE, quarantined[1]))
    assert record["error"]["code"] == code and record["blob"] == f"inbox/{name}"
    assert rt.private_blobs.get(QUARANTINE, quarantined[0]) == data


def test_oversized_blob_drop_is_quarantined_without_reading_it(rt, monkeypatch):
    import dataclasses

    monkeypatch.setattr(rt, "settings", dataclasses.replace(rt.settings, max_blob_bytes=1000))
    drop(rt, "huge.jpg", images.jpeg())
    assert ingest_blob(rt, "huge.jpg") is None
    record_name = next(n for n in inventory(rt)["blobs"][QUARANTINE] if n.endswith(".json"))
    assert json.loads(rt.private_blobs.get(QUARANTINE, record_name))["error"]["code"] == (
        "PAYLOAD_TOO_LARGE"
    )


def test_upload_url_flow_runs_the_registered_job(rt):
    service = JobService(rt)
    upload = service.create_upload(
        ALICE, {"filename": "cat.jpg", "bytes": 9, "operations": [{"op": "flip"}]}
    )
    assert (
        requests.put(
            upload["uploadUrl"],
            data=images.jpeg(),
            timeout=10,
            headers={"x-ms-blob-type": "BlockBlob"},
        ).status_code
        == 201
    )
    name = urlsplit_path(upload["uploadUrl"])
    job = ingest_blob(rt, name)
    assert job.id == upload["jobId"] and job.status is JobStatus.QUEUED
    assert job.owner == ALICE.key and job.source["format"] == "jpeg"
    assert ingest_blob(rt, name) is None
    assert service.get(ALICE, job.id)["status"] == "queued"


def test_upload_of_a_non_image_fails_the_registered_job(rt):
    service = JobService(rt)
    upload = service.create_upload(ALICE, {"filename": "evil.jpg", "bytes": 9})
    requests.put(
        upload["uploadUrl"],
        data=images.html_page(),
        timeout=10,
        headers={"x-ms-blob-type": "BlockBlob"},
    )
    assert ingest_blob(rt, urlsplit_path(upload["uploadUrl"])) is None
    document = service.get(ALICE, upload["jobId"])
    assert document["status"] == "failed"
    assert document["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def urlsplit_path(url: str) -> str:
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).path).split(f"/{INBOX}/", 1)[1]


def test_an_earlier_attempts_different_bytes_are_adopted(rt):
    """An earlier attempt wrote this output with other bytes (a non-deterministic encoder)
    and died before recording it: its blob stands and is what the job delivers."""
    job = new_job(rt, [{"op": "invert"}])
    _, (task,) = tasks_of(rt, job)
    earlier = rt.plain_blobs.put(
        RESULTS, task.output_blob, images.jpeg(64, 48), content_type="image/jpeg"
    )
    outcome = processing.run_operation(rt, task)
    assert outcome["status"] == "succeeded"
    assert outcome["output"]["sha256"] == earlier.sha256
    assert outcome["output"]["bytes"] == earlier.size


def test_a_foreign_blob_at_the_output_name_is_a_conflict(rt):
    job = new_job(rt, [{"op": "invert"}])
    _, (task,) = tasks_of(rt, job)
    rt.clients.container(RESULTS).upload_blob(task.output_blob, b"somebody else's file")
    outcome = processing.run_operation(rt, task)
    assert outcome["error"]["code"] == "OUTPUT_CONFLICT"
    assert rt.plain_blobs.get(RESULTS, task.output_blob) == b"somebody else's file"


def test_the_blob_trigger_passes_its_bytes_and_they_are_not_read_again(rt, monkeypatch):
    import azure.functions as func
    from azure.functions.blob import InputStream

    from shared.functions.blobs import ingest

    data = images.jpeg()
    drop(rt, "trigger.jpg", data)
    downloads = []
    original = rt.plain_blobs.get
    monkeypatch.setattr(rt.plain_blobs, "get", lambda *a: downloads.append(a) or original(*a))
    stream: func.InputStream = InputStream(data=data, name="inbox/trigger.jpg", length=len(data))
    ingest(stream)
    assert not downloads
    assert inventory(rt)["queues"]["jobs"] == 1


def test_the_manifest_exists_before_the_job_is_terminal(rt, monkeypatch):
    """A client that sees a terminal job finds every file: if the manifest cannot be
    written, the job is not terminal yet (the activity's retry finishes it)."""
    job = new_job(rt, [{"op": "flip"}])
    _, (task,) = tasks_of(rt, job)
    processing.run_operation(rt, task)

    def storage_down(*args, **kwargs):
        raise Unavailable("storage is having a moment")

    with monkeypatch.context() as patch:
        patch.setattr(rt.plain_blobs, "put_json", storage_down)
        with pytest.raises(Unavailable):
            processing.finalize(rt, job.id, timed_out=False)
    assert not rt.store.get(job.id).status.terminal
    assert processing.finalize(rt, job.id, timed_out=False)["status"] == "succeeded"
    manifest = json.loads(rt.plain_blobs.get(RESULTS, f"{job.id}/manifest.json"))
    assert manifest["completedAt"] == JobService(rt).get(ALICE, job.id)["completedAt"]
