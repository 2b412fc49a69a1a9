"""Load: hundreds of jobs at once through the local host with several workers.

Every job must reach a terminal state (`succeeded`: nothing here is meant to fail) with
exactly its outputs: under `results/<job>/` one blob per operation, named as the spec says,
plus `manifest.json`, nothing missing and nothing twice, each blob tagged with its job and
operation and matching the manifest's checksum. At the end the `jobs`, `ops` and
`ops-poison` queues are empty and no orchestration is left pending, running or failed.

The jobs come from `USERS` principals at once (12 client threads), so each stays well under
the per-principal submission limit, which is left on. `PIXELPIPE_LOAD_JOBS` (default 300)
and `PIXELPIPE_LOAD_WORKERS` (default 3) size the run.
The summary line (printed; `-s` shows it) gives the submit and drain times and how many
operations ran more than once (allowed: delivery is at least once; the outputs must not
show it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from shared.imaging.formats import FORMATS
from shared.storage.clients import JOBS_QUEUE, OPS_POISON_QUEUE, OPS_QUEUE, RESULTS
from tests.e2e.conftest import TERMINAL, LocalHost, start_host, wait_until
from tests.fixtures import images

pytestmark = [pytest.mark.azurite, pytest.mark.slow]

JOBS = int(os.environ.get("PIXELPIPE_LOAD_JOBS", "300"))
WORKERS = int(os.environ.get("PIXELPIPE_LOAD_WORKERS", "3"))
SUBMITTERS = 12
USERS = 10  # jobs are spread over this many principals, each well under its per-minute limit
DRAIN_TIMEOUT = 240.0

# One or two operations per job, small and varied (geometry, colour, filters, chains, every
# writable everyday format). Explicit names and formats: the expected blob names follow.
SPECS: list[list[dict[str, Any]]] = [
    [{"name": "small", "op": "resize", "width": 32, "format": "png"}],
    [
        {"name": "thumb", "op": "thumbnail", "size": 24, "crop": True, "format": "jpeg"},
        {"name": "gray", "op": "grayscale", "format": "webp"},
    ],
    [{"name": "flipped", "op": "flip", "direction": "horizontal", "format": "jpeg"}],
    [
        {"name": "sepia", "op": "sepia", "format": "png"},
        {
            "name": "sharp",
            "op": "resize",
            "width": 48,
            "then": [{"op": "sharpen"}],
            "format": "jpeg",
        },
    ],
]


def _sources() -> list[tuple[bytes, str]]:
    return [
        (images.jpeg(64, 48, seed=1), "image/jpeg"),
        (images.png(64, 48), "image/png"),
        (images.jpeg(64, 48, seed=2), "image/jpeg"),
    ]


def _expected(ops: list[dict[str, Any]]) -> dict[str, str]:
    """Blob name under results/<job>/ -> operation name."""
    return {f"{op['name']}.{FORMATS[op['format']].extension}": op["name"] for op in ops}


@pytest.fixture(scope="module")
def load_host(tmp_path_factory: pytest.TempPathFactory):
    host, azurite = start_host(tmp_path_factory, "load", workers=WORKERS)
    try:
        yield host
    finally:
        host.stop()
        azurite.stop()


class Client:
    """Many users (the per-principal submission limit stays on: each user keeps under it),
    one requests session per thread."""

    def __init__(self, host: LocalHost, users: int) -> None:
        self.host = host
        self.tokens = [host.token(f"load-user-{u}") for u in range(users)]
        self.local = threading.local()
        self.owner: dict[str, int] = {}

    @property
    def session(self) -> requests.Session:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        return session

    def _auth(self, user: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def submit(
        self, user: int, data: bytes, content_type: str, ops: list[dict[str, Any]], key: str
    ) -> str:
        """Submit once; a lost reply is retried with the same Idempotency-Key (same job)."""
        for attempt in range(4):
            try:
                reply = self.session.post(
                    f"{self.host.url}/api/jobs",
                    params={"spec": json.dumps({"operations": ops})},
                    data=data,
                    headers={
                        **self._auth(user),
                        "Content-Type": content_type,
                        "Idempotency-Key": key,
                    },
                    timeout=60,
                )
            except requests.RequestException:
                if attempt == 3:
                    raise
                time.sleep(0.5)
                continue
            if reply.status_code < 500 or attempt == 3:
                break
            time.sleep(0.5)
        assert reply.status_code in (200, 202), reply.text
        job_id = str(reply.json()["id"])
        self.owner[job_id] = user
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        reply = self.session.get(
            f"{self.host.url}/api/jobs/{job_id}", headers=self._auth(self.owner[job_id]), timeout=30
        )
        reply.raise_for_status()
        return dict(reply.json())

    def wait_all(self, job_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        """Each job's terminal document. Jobs finish roughly in the order they came, so the
        oldest unfinished one is polled until done and the next ones are then mostly done
        already: about one request per job, not one per job per poll."""
        deadline = time.monotonic() + timeout
        done: dict[str, dict[str, Any]] = {}
        for job_id in job_ids:
            while True:
                document = self.job(job_id)
                if document["status"] in TERMINAL:
                    done[job_id] = document
                    break
                if time.monotonic() > deadline:
                    pending = len(job_ids) - len(done)
                    raise TimeoutError(
                        f"{pending} job(s) not terminal after {timeout}s; first {job_id}: "
                        f"{document['status']} {document['progress']}\n{self.host.tail()}"
                    )
                time.sleep(0.25)
        return done


def _worker_invocations(host: LocalHost) -> tuple[Counter[tuple[str, int]], list[str]]:
    """Successful `worker` invocations per (job, operation index), and failed ones, from the
    host's one-line-per-invocation log."""
    ok: Counter[tuple[str, int]] = Counter()
    failed: list[str] = []
    assert host.log is not None
    for line in host.log.read_text(errors="replace").splitlines():
        match = re.search(r"(\{\"function\": \"worker\".*\})\s*$", line)
        if not match:
            continue
        entry = json.loads(match.group(1))
        if entry.get("outcome") == "ok":
            ok[(entry["jobId"], int(entry["index"]))] += 1
        else:
            failed.append(f"{entry.get('jobId')}/{entry.get('index')}: {entry.get('outcome')}")
    return ok, failed


def test_hundreds_of_jobs_each_with_exactly_its_outputs(load_host: LocalHost) -> None:
    client = Client(load_host, USERS)
    sources = _sources()
    run = uuid.uuid4().hex[:8]
    plan = [(i, sources[i % len(sources)], SPECS[i % len(SPECS)]) for i in range(JOBS)]

    started = time.monotonic()
    with ThreadPoolExecutor(SUBMITTERS) as pool:
        job_ids = list(
            pool.map(
                lambda item: client.submit(
                    item[0] % USERS, item[1][0], item[1][1], item[2], f"{run}-{item[0]}"
                ),
                plan,
            )
        )
    submitted = time.monotonic()
    assert len(set(job_ids)) == JOBS, "every submission is its own job"
    documents = client.wait_all(job_ids, DRAIN_TIMEOUT)
    drained = time.monotonic()

    # Every job terminal and succeeded, with exactly its operations.
    statuses = Counter(d["status"] for d in documents.values())
    assert statuses == {"succeeded": JOBS}, statuses
    spec_of = dict(zip(job_ids, (ops for _, _, ops in plan), strict=True))
    for job_id, document in documents.items():
        ops = spec_of[job_id]
        assert document["progress"] == {"done": len(ops), "total": len(ops)}
        assert [(o["index"], o["name"], o["status"]) for o in document["operations"]] == [
            (i, op["name"], "succeeded") for i, op in enumerate(ops)
        ]

    # Storage: under results/<job>/ exactly the outputs and the manifest, once each.
    rt = load_host.runtime()
    container = rt.clients.container(RESULTS)
    found: dict[str, Counter[str]] = {}
    metadata: dict[tuple[str, str], dict[str, str]] = {}
    for blob in container.list_blobs(include=["metadata"]):
        job_id, _, name = blob.name.partition("/")
        found.setdefault(job_id, Counter())[name] += 1
        metadata[(job_id, name)] = dict(blob.metadata or {})
    assert set(found) == set(job_ids), "outputs only for these jobs, for every one of them"
    for job_id in job_ids:
        expected = _expected(spec_of[job_id])
        assert found[job_id] == Counter([*expected, "manifest.json"]), (job_id, found[job_id])

    # The manifest (written last) lists each output once, with the stored bytes' checksum,
    # and each output blob says which job and operation wrote it.
    def check_manifest(job_id: str) -> None:
        ops = spec_of[job_id]
        manifest = json.loads(container.download_blob(f"{job_id}/manifest.json").readall())
        assert manifest["job"] == job_id and manifest["status"] == "succeeded"
        assert [e["name"] for e in manifest["operations"]] == [op["name"] for op in ops]
        for index, entry in enumerate(manifest["operations"]):
            blob = entry["output"]["blob"]
            assert _expected(ops)[blob] == entry["name"]
            data = container.download_blob(f"{job_id}/{blob}").readall()
            assert hashlib.sha256(data).hexdigest() == entry["output"]["sha256"]
            assert len(data) == entry["output"]["bytes"]
            tags = metadata[(job_id, blob)]
            assert (tags["job"], tags["operation"]) == (job_id, str(index))
            assert tags.get("sha256", entry["output"]["sha256"]) == entry["output"]["sha256"]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(check_manifest, job_ids))

    # Nothing left behind in the queues, no orchestration left over or failed.
    def queues_empty() -> bool:
        return all(
            rt.clients.queue(name).get_queue_properties().approximate_message_count == 0
            for name in (JOBS_QUEUE, OPS_QUEUE, OPS_POISON_QUEUE)
        )

    wait_until(queues_empty, timeout=30, interval=0.5)

    def orchestrations_settled() -> bool:
        reply = requests.get(
            f"{load_host.url}/runtime/webhooks/durabletask/instances/",
            params={"runtimeStatus": "Pending,Running,Failed,Terminated", "showInput": "false"},
            timeout=30,
        )
        reply.raise_for_status()
        return not reply.json()

    wait_until(orchestrations_settled, timeout=30, interval=0.5)

    # Each operation ran at least once (more is allowed; the outputs above show no trace).
    ok, failed = _worker_invocations(load_host)
    expected_ops = {(job_id, i) for job_id in job_ids for i in range(len(spec_of[job_id]))}
    assert set(ok) >= expected_ops
    repeats = sum(count - 1 for key, count in ok.items() if key in expected_ops)
    operations = len(expected_ops)
    print(
        json.dumps(
            {
                "test": "load",
                "jobs": JOBS,
                "operations": operations,
                "workers": WORKERS,
                "submit_s": round(submitted - started, 1),
                "drain_s": round(drained - submitted, 1),
                "total_s": round(drained - started, 1),
                "jobs_per_s": round(JOBS / (drained - started), 1),
                "repeated_operations": repeats,
                "failed_invocations": len(failed),
            }
        )
    )
