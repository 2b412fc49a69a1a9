"""Queue triggers: dispatch (jobs), worker (ops) and the poison handler (ops-poison).

The message encoding is the host's default, base64 (`host.json` says so explicitly); the
producers in `shared.runtime.Runtime.send` encode to match.
"""

from __future__ import annotations

import asyncio
import json

import azure.durable_functions as df
import azure.functions as func

from shared.errors import ProcessingFailed
from shared.jobs.orchestration import ensure_started, raise_operation_event
from shared.jobs.processing import (
    OpTask,
    dispatch_tasks,
    enqueue,
    fail_operation,
    orchestration_input,
    run_operation,
)
from shared.runtime import runtime
from shared.storage.clients import JOBS_QUEUE, OPS_POISON_QUEUE, OPS_QUEUE
from shared.telemetry import span

__all__ = ["bp"]

bp = df.Blueprint()
CONNECTION = "AzureWebJobsStorage"


@bp.queue_trigger(arg_name="msg", queue_name=JOBS_QUEUE, connection=CONNECTION)
@bp.durable_client_input(client_name="client")
async def dispatch(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    job_id = json.loads(msg.get_body())["jobId"]
    rt = runtime()
    with span("dispatch", job_id=job_id):
        job, operations = await asyncio.to_thread(rt.store.get_with_operations, job_id)
        if job is None or job.status.terminal:
            return  # deleted, or a late duplicate
        await ensure_started(client, job_id, orchestration_input(rt, job))
        await asyncio.to_thread(enqueue, rt, job, dispatch_tasks(rt, job, operations))


@bp.queue_trigger(arg_name="msg", queue_name=OPS_QUEUE, connection=CONNECTION)
@bp.durable_client_input(client_name="client")
async def worker(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    task = OpTask.from_message(json.loads(msg.get_body()))
    with span(
        "operation",
        job_id=task.job_id,
        operation=task.name,
        index=task.index,
        dequeue_count=msg.dequeue_count or 0,
    ):
        outcome = await asyncio.to_thread(run_operation, runtime(), task)
        await raise_operation_event(client, task.job_id, task.index, outcome)


@bp.queue_trigger(arg_name="msg", queue_name=OPS_POISON_QUEUE, connection=CONNECTION)
@bp.durable_client_input(client_name="client")
async def worker_poison(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    # Only the job id and index are needed: the rest of the message may be what failed.
    message = json.loads(msg.get_body())
    job_id, index = str(message["jobId"]), int(message["index"])
    with span("operation.poison", job_id=job_id, index=index):
        error = ProcessingFailed("The operation failed on every attempt and was abandoned.")
        outcome = await asyncio.to_thread(fail_operation, runtime(), job_id, index, error)
        await raise_operation_event(client, job_id, index, outcome)
