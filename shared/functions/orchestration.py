"""The job orchestrator and its activities (logic in `shared.jobs.orchestration`/`processing`)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from shared.jobs import orchestration
from shared.jobs.processing import deliver_job_webhook
from shared.jobs.processing import finalize as finalize_job
from shared.runtime import runtime
from shared.telemetry import span

__all__ = ["bp"]

bp = df.Blueprint()


@bp.function_name(orchestration.ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def job(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield from orchestration.job_orchestrator(context))


@bp.function_name(orchestration.FINALIZE)
@bp.activity_trigger(input_name="payload")
def finalize(payload: dict[str, Any]) -> dict[str, Any]:
    with span("finalize", job_id=payload["jobId"]):
        return finalize_job(runtime(), payload["jobId"], timed_out=bool(payload.get("timedOut")))


@bp.function_name(orchestration.WEBHOOK)
@bp.activity_trigger(input_name="payload")
def deliver_webhook(payload: dict[str, Any]) -> dict[str, Any]:
    with span("webhook", job_id=payload["jobId"]):
        return deliver_job_webhook(runtime(), payload["jobId"])
