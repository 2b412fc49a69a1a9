"""The registered shape of the app: every trigger and binding, and their agreement with
host.json and the settings (what the Functions host will read)."""

from __future__ import annotations

import json
from pathlib import Path

from shared.config import describe_settings
from shared.storage.clients import INBOX, JOBS_QUEUE, OPS_POISON_QUEUE, OPS_QUEUE, QUEUES
from tests.support.app import registered

ROOT = Path(__file__).resolve().parents[2]
HOST = json.loads((ROOT / "host.json").read_text())


def trigger(name: str) -> dict:
    return next(b for b in registered()[name]["bindings"] if b["type"].endswith("Trigger"))


def test_the_functions_and_their_triggers():
    kinds = {name: trigger(name)["type"] for name in registered()}
    assert kinds == {
        "health": "httpTrigger",
        "openapi_document": "httpTrigger",
        "operations": "httpTrigger",
        "jobs": "httpTrigger",
        "job_item": "httpTrigger",
        "job_output": "httpTrigger",
        "uploads": "httpTrigger",
        "ui": "httpTrigger",
        "ui_asset": "httpTrigger",
        "dispatch": "queueTrigger",
        "worker": "queueTrigger",
        "worker_poison": "queueTrigger",
        "job": "orchestrationTrigger",
        "finalize": "activityTrigger",
        "deliver_webhook": "activityTrigger",
        "ingest": "blobTrigger",
    }


def test_http_routes_methods_and_auth_level():
    routes = {
        name: (trigger(name)["route"], tuple(trigger(name)["methods"]))
        for name in registered()
        if trigger(name)["type"] == "httpTrigger"
    }
    assert routes["jobs"] == ("jobs", ("GET", "POST"))
    assert routes["job_item"] == ("jobs/{id}", ("GET", "DELETE"))
    assert routes["job_output"] == ("jobs/{id}/outputs/{ref}", ("GET",))
    assert routes["uploads"] == ("uploads", ("POST",))
    for name in routes:
        # Tokens are validated in code (the same code locally and in Azure), not by keys.
        assert trigger(name)["authLevel"] == "ANONYMOUS", name
    assert HOST["extensions"]["http"]["routePrefix"] == "api"


def test_queue_triggers_use_the_apps_queues_and_a_durable_client():
    assert {trigger(n)["queueName"] for n in ("dispatch", "worker", "worker_poison")} == set(QUEUES)
    assert trigger("dispatch")["queueName"] == JOBS_QUEUE
    assert trigger("worker")["queueName"] == OPS_QUEUE
    # The host moves a message that failed maxDequeueCount times to "<queue>-poison".
    assert trigger("worker_poison")["queueName"] == f"{OPS_QUEUE}-poison" == OPS_POISON_QUEUE
    for name in ("dispatch", "worker", "worker_poison"):
        kinds = [b["type"] for b in registered()[name]["bindings"]]
        assert kinds.count("durableClient") == 1, name


def test_blob_trigger_is_event_grid_on_the_inbox():
    blob = trigger("ingest")
    assert blob["path"] == f"{INBOX}/{{name}}"
    assert blob["source"] == "EventGrid"  # Flex Consumption runs only this kind


def test_connections_name_a_declared_setting():
    declared = {entry["env"] for entry in describe_settings()}
    for name in registered():
        connection = trigger(name).get("connection")
        if connection is not None:
            assert connection == "AzureWebJobsStorage" and connection in declared, name


def test_host_json_is_deliberate():
    assert HOST["version"] == "2.0"
    assert HOST["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    queues = HOST["extensions"]["queues"]
    assert queues["messageEncoding"] == "base64"  # what Runtime.send produces
    assert queues["maxDequeueCount"] >= 3 and queues["batchSize"] >= 1
    assert queues["visibilityTimeout"] != "00:00:00"  # a failed message waits before retrying
    assert HOST["extensions"]["durableTask"]["hubName"] == "pixelpipe"
    assert HOST["functionTimeout"] == "00:30:00"
    assert HOST["telemetryMode"] == "OpenTelemetry"


def test_producers_encode_messages_the_way_the_trigger_decodes_them(rt):
    import base64

    rt.send(JOBS_QUEUE, {"jobId": "x"})
    plain = rt.clients.queue_service.get_queue_client(JOBS_QUEUE)  # no decoding policy
    (message,) = list(plain.peek_messages())
    assert json.loads(base64.b64decode(message.content)) == {"jobId": "x"}
