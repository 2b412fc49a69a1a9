"""The job orchestration: the fan-in of a job's operations, with a durable deadline.

    start (instance id = job id, input {jobId, total, deadlineSeconds, webhook})
      ├─ timer at start + deadline
      ├─ wait for op-0 … op-(n-1)           each worker raises its own `op-<index>` event
      │     (distinct names: the Python SDK mishandles two events of one name raised before
      │      the orchestrator waits for them, durable-python #507)
      │     after each event: custom status {"done": k, "total": n}
      ├─ finalize activity                  job row terminal, manifest last, result document
      ├─ deliver_webhook activity           only if the job names a webhook; durable retries
      └─ return the result document

Deterministic by construction: time comes from `context.current_utc_datetime`, nothing random,
no I/O. Replays re-run this code against the recorded history.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

__all__ = [
    "FINALIZE",
    "ORCHESTRATOR",
    "WEBHOOK",
    "WEBHOOK_RETRY",
    "ensure_started",
    "event_name",
    "job_orchestrator",
    "raise_operation_event",
]

ORCHESTRATOR = "job"
FINALIZE = "finalize"
WEBHOOK = "deliver_webhook"
# 5 attempts, 2 s then doubling: 2 + 4 + 8 + 16 s of backoff (a durable timer each).
WEBHOOK_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=5)
WEBHOOK_RETRY.backoff_coefficient = 2


def event_name(index: int) -> str:
    return f"op-{index}"


def job_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    job: dict[str, Any] = context.get_input()
    total = int(job["total"])
    deadline = context.current_utc_datetime + timedelta(seconds=int(job["deadlineSeconds"]))
    timer = context.create_timer(deadline)
    waiting = {i: context.wait_for_external_event(event_name(i)) for i in range(total)}
    done = 0
    context.set_custom_status({"done": done, "total": total})
    while waiting:
        winner = yield context.task_any([timer, *waiting.values()])
        if winner is timer:
            break
        for index in [i for i, task in waiting.items() if task.is_completed]:
            del waiting[index]
            done += 1
        context.set_custom_status({"done": done, "total": total})
    if not timer.is_completed:
        timer.cancel()
    result = yield context.call_activity(
        FINALIZE, {"jobId": job["jobId"], "timedOut": bool(waiting)}
    )
    if job.get("webhook"):
        try:
            yield context.call_activity_with_retry(WEBHOOK, WEBHOOK_RETRY, {"jobId": job["jobId"]})
        except Exception:  # noqa: S110 - the job's delivery record says what happened
            pass
    context.set_custom_status({"done": done, "total": total, "finalized": True})
    return result


# -- The client side: what the triggers do with a DurableOrchestrationClient -----------------


async def ensure_started(
    client: df.DurableOrchestrationClient, job_id: str, payload: dict[str, Any]
) -> bool:
    """Start the job's orchestration (instance id = job id) unless it exists in any state.

    An existing instance, running or finished, is left alone: `start_new` would restart a
    finished one. Returns whether this call started it.
    """
    try:
        status = await client.get_status(job_id)
        exists = status is not None and status.runtime_status is not None
    except TypeError:  # a 404 with an empty body
        exists = False
    if exists:
        return False
    try:
        await client.start_new(ORCHESTRATOR, job_id, payload)
    except Exception as exc:
        if "already exists" in str(exc).lower():
            return False  # a concurrent dispatch won the race
        raise
    return True


async def raise_operation_event(
    client: df.DurableOrchestrationClient, job_id: str, index: int, outcome: dict[str, Any]
) -> None:
    """Tell the orchestration that operation `index` is done. A finished orchestration
    (the job hit its deadline, or the event is a repeat) is not an error."""
    try:
        await client.raise_event(job_id, event_name(index), outcome)
    except Exception as exc:
        if "is gone" in str(exc):
            return
        raise
