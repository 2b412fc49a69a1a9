"""Telemetry: OpenTelemetry spans, exported to Application Insights in Azure.

`configure()` (called once by function_app.py) turns on the Azure Monitor exporter when
`APPLICATIONINSIGHTS_CONNECTION_STRING` is set (host.json sets `"telemetryMode":
"OpenTelemetry"`, so the host's own telemetry joins the same traces). Job and operation
attributes go on spans (`pixelpipe.job_id`, `pixelpipe.operation`, ...), where they become
customDimensions in Application Insights; `logging`'s `extra=` would not get there.

`span(name, **attributes)` wraps one unit of work and also writes one structured log line
when it ends: name, attributes, duration and outcome.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

__all__ = ["configure", "span"]

log = logging.getLogger("pixelpipe")
_tracer = trace.get_tracer("pixelpipe")
_configured = False


def configure() -> bool:
    """Export to Application Insights if a connection string is configured."""
    global _configured
    if _configured or not os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        return _configured
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(logger_name="pixelpipe")
    _configured = True
    return True


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Span]:
    started = time.perf_counter()
    outcome = "ok"
    with _tracer.start_as_current_span(f"pixelpipe.{name}") as current:
        for key, value in attributes.items():
            if value is not None:
                current.set_attribute(f"pixelpipe.{key}", value)
        try:
            yield current
        except Exception as exc:
            outcome = getattr(exc, "code", type(exc).__name__)
            current.record_exception(exc)
            current.set_status(Status(StatusCode.ERROR, str(outcome)))
            raise
        finally:
            line = {
                "event": name,
                **attributes,
                "outcome": outcome,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
            log.info(json.dumps(line, default=str, separators=(",", ":")))
