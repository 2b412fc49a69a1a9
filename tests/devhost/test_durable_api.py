"""The Durable HTTP API over Azurite, driven by the SDK's own `DurableOrchestrationClient` built
from `client_binding(...)`, with the work loop running in background threads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from azure.durable_functions import DurableOrchestrationClient
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from devhost.durable.storage import AzuriteDurableHost
from tests.devhost.conftest import HostFactory
from tests.devhost.support import DurableApi, LoopThread, drain, wait_until, workers

pytestmark = [
    pytest.mark.azurite,
    pytest.mark.filterwarnings("ignore:Potential duplicate Task completion:UserWarning"),
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called:DeprecationWarning"),
]

Status = OrchestrationRuntimeStatus


def status_of(
    api: DurableApi, client: DurableOrchestrationClient, instance_id: str, **kw: Any
) -> DurableOrchestrationStatus:
    status: DurableOrchestrationStatus = api(client.get_status(instance_id, **kw))
    return status


def wait_for(
    api: DurableApi,
    client: DurableOrchestrationClient,
    instance_id: str,
    *wanted: Status,
    timeout: float = 15,
) -> DurableOrchestrationStatus:
    wanted = wanted or (Status.Completed,)

    def reached() -> DurableOrchestrationStatus | None:
        status = status_of(api, client, instance_id)
        return status if status.runtime_status in wanted else None

    return wait_until(reached, timeout=timeout, what=f"{instance_id} to be {wanted}")


def history_types(
    api: DurableApi, client: DurableOrchestrationClient, instance_id: str
) -> list[str]:
    status = status_of(api, client, instance_id, show_history=True)
    return [event["EventType"] for event in status.historyEvents]


def test_client_binding_is_what_the_sdk_reads(api: DurableApi) -> None:
    client = api.client()
    bindings = client._orchestration_bindings
    assert bindings.task_hub_name == api.host.hub
    assert bindings.rpc_base_url == f"{api.base_url}/runtime/webhooks/durabletask/"
    links = client.create_http_management_payload("abc")
    assert links["statusQueryGetUri"] == (
        f"{api.base_url}/runtime/webhooks/durabletask/instances/abc"
        f"?taskHub={api.host.hub}&connection=Storage"
    )
    assert set(links) >= {"id", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri"}


def test_status_codes_and_headers_are_the_extensions(api: DurableApi) -> None:
    base = f"{api.base_url}/runtime/webhooks/durabletask"

    async def probe() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/orchestrators/waits/raw-1") as r:
                seen["start"] = (r.status, r.headers.get("Location"), await r.json())
            async with session.get(f"{base}/instances/raw-1") as r:
                seen["pending"] = (r.status, r.headers.get("Location"), r.headers["Retry-After"])
            async with session.get(f"{base}/instances/missing") as r:
                seen["missing"] = (r.status, await r.read())
            async with session.post(
                f"{base}/instances/raw-1/raiseEvent/a",
                data="x",
                headers={"Content-Type": "text/plain"},
            ) as r:
                seen["not_json"] = r.status
            async with session.post(f"{base}/orchestrators/waits/raw-1") as r:
                seen["again"] = (r.status, await r.json())
            async with session.post(f"{base}/orchestrators/waits", data="{oops") as r:
                seen["bad_json"] = (r.status, await r.json())
            async with session.post(f"{base}/instances/raw-1/rewind?reason=x") as r:
                seen["rewind"] = (r.status, await r.json())
        return seen

    seen = api(probe())
    status, location, payload = seen["start"]
    assert status == 202
    assert location == payload["statusQueryGetUri"]
    assert location.startswith(f"{base}/instances/raw-1?taskHub={api.host.hub}")
    assert payload["id"] == "raw-1"
    assert payload["sendEventPostUri"].startswith(
        f"{base}/instances/raw-1/raiseEvent/{{eventName}}"
    )
    assert seen["pending"] == (202, f"{base}/instances/raw-1", "5")
    assert seen["missing"] == (404, b"")
    assert seen["not_json"] == 400
    assert seen["again"][0] == 409 and "already exists" in seen["again"][1]["Message"]
    assert seen["bad_json"][0] == 400 and seen["bad_json"][1]["Message"] == "Invalid JSON content"
    assert seen["rewind"][0] == 501 and "rewind" in seen["rewind"][1]["Message"]


def test_pending_running_completed_with_output_and_custom_status(
    api: DurableApi, host: AzuriteDurableHost
) -> None:
    client = api.client()
    instance_id = api(client.start_new("chain", None, 3))
    assert len(instance_id) == 32

    pending = status_of(api, client, instance_id)
    assert pending.runtime_status is Status.Pending
    assert pending.name == "chain"
    assert pending.input_ == 3
    assert pending.output is None

    host.process_orchestrations()  # the first episode: first activity scheduled
    running = status_of(api, client, instance_id)
    assert running.runtime_status is Status.Running
    assert running.custom_status == {"stage": "first"}

    drain(host)
    done = status_of(api, client, instance_id, show_history=True, show_history_output=True)
    assert done.runtime_status is Status.Completed
    assert done.output == {"first": 6, "second": 12}
    assert done.custom_status == {"stage": "done"}
    assert done.created_time <= done.last_updated_time
    events = done.historyEvents
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        "TaskCompleted",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    assert events[0]["FunctionName"] == "chain" and events[0]["Input"] == 3
    assert [e["Result"] for e in events[1:3]] == [6, 12]
    assert events[1]["FunctionName"] == "double" and "ScheduledTime" in events[1]
    assert events[3]["OrchestrationStatus"] == "Completed"
    assert events[3]["Result"] == {"first": 6, "second": 12}

    quiet = status_of(api, client, instance_id, show_history=True)
    assert "Result" not in quiet.historyEvents[1]


def test_events_raised_before_and_after_the_orchestrator_waits(
    api: DurableApi, host: AzuriteDurableHost
) -> None:
    client = api.client()
    instance_id = api(client.start_new("two_events"))
    api(client.raise_event(instance_id, "a", {"n": 1}))  # before the first episode even
    with workers(host):
        # The orchestrator sleeps a second, takes the buffered "a", then waits for "b".
        wait_until(
            lambda: "TimerFired" in history_types(api, client, instance_id), what="the timer"
        )
        assert status_of(api, client, instance_id).runtime_status is Status.Running
        api(client.raise_event(instance_id, "b", ["x", None]))
        done = wait_for(api, client, instance_id)
    assert done.output == [{"n": 1}, ["x", None]]


def test_durable_timer_fires_through_queue_visibility(
    api: DurableApi, host: AzuriteDurableHost
) -> None:
    client = api.client()
    started = time.monotonic()
    with workers(host):
        instance_id = api(client.start_new("sleeper", None, 1))
        done = wait_for(api, client, instance_id)
    assert time.monotonic() - started >= 1.0
    assert done.output >= 1.0  # current_utc_datetime moved by the timer's duration at least
    assert history_types(api, client, instance_id).count("TimerFired") == 1


def test_task_any_event_against_timer(api: DurableApi, host: AzuriteDurableHost) -> None:
    client = api.client()
    with workers(host, threads=2):
        event_wins = api(client.start_new("race", None, 30))
        timer_wins = api(client.start_new("race", None, 1))
        wait_for(api, client, event_wins, Status.Running)
        api(client.raise_event(event_wins, "go", "now"))
        assert wait_for(api, client, event_wins).output == {"event": "now"}
        assert wait_for(api, client, timer_wins).output == "timeout"


def test_start_with_the_id_of_a_running_instance_already_exists_and_a_finished_one_restarts(
    api: DurableApi, host: AzuriteDurableHost
) -> None:
    client = api.client()
    assert api(client.start_new("waits", "job-1", {"round": 1})) == "job-1"
    with pytest.raises(Exception, match="already exists"):
        api(client.start_new("waits", "job-1", {"round": 2}))
    drain(host)
    with pytest.raises(Exception, match="already exists"):
        api(client.start_new("waits", "job-1", {"round": 2}))

    with workers(host):
        api(client.raise_event("job-1", "a", 1))
        api(client.raise_event("job-1", "b", 2))
        first = wait_for(api, client, "job-1")
        assert first.output == [1, 2]

        assert api(client.start_new("waits", "job-1", {"round": 2})) == "job-1"
        restarted = status_of(api, client, "job-1")
        assert restarted.runtime_status in (Status.Pending, Status.Running)
        assert restarted.input_ == {"round": 2}
        assert restarted.output is None
        assert restarted.created_time >= first.created_time
        wait_for(api, client, "job-1", Status.Running)
        api(client.raise_event("job-1", "a", 3))
        api(client.raise_event("job-1", "b", 4))
        assert wait_for(api, client, "job-1").output == [3, 4]
    # the history is the new execution's alone
    assert history_types(api, client, "job-1").count("ExecutionStarted") == 1


def test_raise_event_to_a_missing_or_finished_instance(
    api: DurableApi, host: AzuriteDurableHost
) -> None:
    client = api.client()
    with pytest.raises(Exception, match=r"No instance with ID nope found\."):
        api(client.raise_event("nope", "a", 1))
    instance_id = api(client.start_new("chain", None, 1))
    drain(host)
    with pytest.raises(Exception, match=f"Instance with ID {instance_id} is gone"):
        api(client.raise_event(instance_id, "a", 1))


def test_terminate(api: DurableApi, host: AzuriteDurableHost) -> None:
    client = api.client()
    with pytest.raises(Exception, match=r"No instance with ID 'ghost' found\."):
        api(client.terminate("ghost", "why"))
    instance_id = api(client.start_new("waits"))
    drain(host)
    api(client.terminate(instance_id, "enough waiting"))
    drain(host)
    status = status_of(api, client, instance_id)
    assert status.runtime_status is Status.Terminated
    assert status.output == "enough waiting"
    api(client.terminate(instance_id, "again"))  # a 410, which the client ignores
    with pytest.raises(Exception, match="is gone"):
        api(client.raise_event(instance_id, "a", 1))


def test_terminate_a_pending_instance(api: DurableApi, host: AzuriteDurableHost) -> None:
    client = api.client()
    instance_id = api(client.start_new("waits"))
    api(client.terminate(instance_id, "never mind"))
    drain(host)
    status = status_of(api, client, instance_id)
    assert status.runtime_status is Status.Terminated
    assert status.output == "never mind"


def test_purge(api: DurableApi, host: AzuriteDurableHost) -> None:
    client = api.client()
    assert api(client.purge_instance_history("ghost")).instances_deleted == 0
    running = api(client.start_new("waits"))
    drain(host)
    with pytest.raises(Exception, match="412"):
        api(client.purge_instance_history(running))
    done = api(client.start_new("chain", None, 2))
    drain(host)
    assert api(client.purge_instance_history(done)).instances_deleted == 1
    gone = status_of(api, client, done)
    assert not gone and gone.runtime_status is None  # a 404: what ensure_started checks
    assert status_of(api, client, running).runtime_status is Status.Running
    assert api(client.start_new("chain", done, 5)) == done  # the id is free again


def test_queries_and_purge_by_filter(api: DurableApi, host: AzuriteDurableHost) -> None:
    client = api.client()
    started = [api(client.start_new("chain", f"q-{i}", i)) for i in range(3)]
    waiting = api(client.start_new("waits", "w-1"))
    drain(host)
    everything = api(client.get_status_all())
    assert sorted(s.instance_id for s in everything) == sorted([*started, waiting])
    completed = api(client.get_status_by(runtime_status=[Status.Completed]))
    assert sorted(s.instance_id for s in completed) == started
    assert {s.output["second"] for s in completed} == {0, 4, 8}
    prefixed = api(client.get_status_by(instance_id_prefix="w-"))
    assert [s.instance_id for s in prefixed] == ["w-1"]
    since = everything[0].created_time.replace(year=2000)
    purged = api(client.purge_instance_history_by(since, runtime_status=[Status.Completed]))
    assert purged.instances_deleted == 3
    assert [s.instance_id for s in api(client.get_status_all())] == ["w-1"]


def test_unknown_orchestrator_is_a_clean_error(api: DurableApi) -> None:
    client = api.client()
    with pytest.raises(Exception, match="The function 'nope' doesn't exist") as caught:
        api(client.start_new("nope"))
    assert "chain" in str(caught.value)  # the known orchestrators are listed


def test_orchestrator_failure_activity_failure_and_continue_as_new(
    api: DurableApi, host: AzuriteDurableHost
) -> None:
    client = api.client()
    crashed = api(client.start_new("crash"))
    forgiving = api(client.start_new("forgiving"))
    continued = api(client.start_new("countdown", None, 0))
    drain(host)
    failed = status_of(api, client, crashed)
    assert failed.runtime_status is Status.Failed
    assert "Orchestrator function 'crash' failed" in failed.output
    assert "the orchestrator broke" in failed.output
    assert status_of(api, client, forgiving).output == {"caught": True}
    final = status_of(api, client, continued, show_history=True)
    assert final.runtime_status is Status.Completed and final.output == 2
    assert final.historyEvents[0]["Input"] == 2  # the last generation's history only


def test_suspend_is_not_implemented(api: DurableApi, host: AzuriteDurableHost) -> None:
    client = api.client()
    instance_id = api(client.start_new("waits"))
    with pytest.raises(Exception, match="501"):
        api(client.suspend(instance_id, "pause"))


# -- the project's job orchestration ---------------------------------------------------------


@pytest.fixture
def job_host(make_host: HostFactory) -> AzuriteDurableHost:
    from shared.jobs.orchestration import job_orchestrator

    def finalize(payload: dict[str, Any]) -> dict[str, Any]:
        return {"jobId": payload["jobId"], "timedOut": payload["timedOut"], "final": True}

    return make_host(orchestrators={"job": job_orchestrator}, activities={"finalize": finalize})


@pytest.fixture
def job_api(api_loop: LoopThread, job_host: AzuriteDurableHost) -> Iterator[DurableApi]:
    server = DurableApi(api_loop, job_host).start()
    try:
        yield server
    finally:
        server.stop()


def job_input(job_id: str, total: int, deadline: int) -> dict[str, Any]:
    return {"jobId": job_id, "total": total, "deadlineSeconds": deadline, "webhook": False}


def test_job_orchestration_fans_in_operation_events(
    job_api: DurableApi, job_host: AzuriteDurableHost
) -> None:
    from shared.jobs.orchestration import ensure_started, raise_operation_event

    client = job_api.client()
    job_id, total = "job-fan-in", 5
    assert job_api(ensure_started(client, job_id, job_input(job_id, total, 600)))
    assert not job_api(ensure_started(client, job_id, job_input(job_id, total, 600)))
    # two operations finish before the orchestrator's first episode, one of them twice
    for index in (0, 1, 1):
        job_api(raise_operation_event(client, job_id, index, {"status": "succeeded"}))
    with workers(job_host):
        wait_until(
            lambda: (status_of(job_api, client, job_id).custom_status or {}).get("done") == 2,
            what="the early events",
        )
        for index in (2, 3, 4):
            job_api(raise_operation_event(client, job_id, index, {"status": "succeeded"}))
        done = wait_for(job_api, client, job_id)
    assert done.output == {"jobId": job_id, "timedOut": False, "final": True}
    assert done.custom_status == {"done": total, "total": total, "finalized": True}
    # a late duplicate after the end is not an error, and the job is not started again
    job_api(raise_operation_event(client, job_id, 4, {"status": "succeeded"}))
    assert not job_api(ensure_started(client, job_id, job_input(job_id, total, 600)))


def test_job_orchestration_deadline_finalizes_with_timed_out(
    job_api: DurableApi, job_host: AzuriteDurableHost
) -> None:
    from shared.jobs.orchestration import ensure_started, raise_operation_event

    client = job_api.client()
    job_id = "job-deadline"
    started = time.monotonic()
    with workers(job_host):
        assert job_api(ensure_started(client, job_id, job_input(job_id, 3, 2)))
        job_api(raise_operation_event(client, job_id, 0, {"status": "succeeded"}))
        job_api(raise_operation_event(client, job_id, 2, {"status": "failed"}))
        done = wait_for(job_api, client, job_id, timeout=20)
    assert time.monotonic() - started >= 2.0
    assert done.output == {"jobId": job_id, "timedOut": True, "final": True}
    assert done.custom_status == {"done": 2, "total": 3, "finalized": True}
