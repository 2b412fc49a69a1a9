"""The job orchestration: the fan-in of a job's operations, with a durable deadline.

    start (instance id = job id, input {jobId, total, deadlineSeconds, webhook})
      ├─ timer at start + deadline
      ├─ wait for op-0 … op-(n-1)           each worker raises its own `op-<index>` event
      │     (distinct names: the Python SDK mishandles two events of one name raised before
      │      the orchestrator waits for them, durable-python #507)
      │     after each event: custom status {"done": k, "total": n}
      ├─ finalize activity                  job row terminal, manifest last, result document
      ├─ deliver_webhook activity           only if the job names a webhook; up to 5 attempts
      │                                     2, 4, 8, 16 s apart (durable timers)
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
    "WEBHOOK_BACKOFF",
    "ensure_started",
    "event_name",
    "job_orchestrator",
    "raise_operation_event",
]

ORCHESTRATOR = "job"
FINALIZE = "finalize"
WEBHOOK = "deliver_webhook"
# Waits between webhook attempts: 5 attempts in all. (The SDK's RetryOptions cannot back off:
# it sends the extension only the first interval and the attempt count.)
WEBHOOK_BACKOFF = (2, 4, 8, 16)


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
        yield from _deliver_webhook(context, job["jobId"])
    context.set_custom_status({"done": done, "total": total, "finalized": True})
    return result


def _deliver_webhook(
    context: df.DurableOrchestrationContext, job_id: str
) -> Generator[Any, Any, None]:
    """Try the webhook; on failure wait 2, 4, 8, 16 s (durable timers) and try again. The
    activity keeps the delivery record on the job, so giving up needs nothing more here."""
    for wait in (*WEBHOOK_BACKOFF, None):
        try:
            yield context.call_activity(WEBHOOK, {"jobId": job_id})
            return
        except Exception:  # the activity recorded the failed attempt on the job
            if wait is None:
                return
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=wait))


# -- The client side: what the triggers do with a DurableOrchestrationClient -----------------


async def ensure_started(
    client: df.DurableOrchestrationClient, job_id: str, payload: dict[str, Any]
) -> bool:
    """Start the job's orchestration (instance id = job id) unless it exists in any state.

    An existing instance, running or finished, is left alone: `start_new` would restart a
    finished one. Returns whether this call started it.
    """
    status = await client.get_status(job_id)  # a 404 gives a status without runtime_status
    if status is not None and status.runtime_status is not None:
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
