"""What the local host reads: host.json, local.settings.json, and its own defaults.

Settings precedence, highest first: the process environment, the values in
`local.settings.json` (created from `local.settings.sample.json` on first run, git-ignored)
that differ from the sample's, the dev defaults below (which point the app at Azurite and
at the local token issuer, allow loopback webhooks, and give the webhook signing key a
random local value), then the sample. The app's own code is never told it is running
locally: only these values differ.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost.issuer import DEV_AUDIENCE, DEV_TENANT

__all__ = ["DATA", "ROOT", "HostConfig", "QueueSettings", "app_settings"]

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("DEVHOST_DATA") or ROOT / ".data")  # git-ignored
PLATFORM_BODY_LIMIT = 100 * 1024 * 1024  # Azure Functions' default HTTP request body cap


def _timespan(text: str | None, default: float) -> float:
    """A .NET TimeSpan (`00:00:10`, `1.00:00:00`) in seconds."""
    if not text:
        return default
    match = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", text.strip())
    if not match:
        raise ValueError(f"not a TimeSpan: {text!r}")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@dataclass(frozen=True)
class QueueSettings:
    """host.json `extensions.queues`, with the Functions host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0  # the delay before a failed message is retried
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, data: dict[str, Any]) -> QueueSettings:
        queues = data.get("extensions", {}).get("queues", {})
        return cls(
            batch_size=int(queues.get("batchSize", 16)),
            new_batch_threshold=int(queues.get("newBatchThreshold", 8)),
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
            visibility_timeout=_timespan(queues.get("visibilityTimeout"), 0.0),
            max_polling_interval=_timespan(queues.get("maxPollingInterval"), 60.0),
            message_encoding=str(queues.get("messageEncoding", "base64")).lower(),
        )


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str
    queues: QueueSettings
    hub_name: str
    function_timeout: float
    durable_max_poll: float  # durableTask.storageProvider.maxQueuePollingInterval

    @classmethod
    def load(cls, path: Path = ROOT / "host.json") -> HostConfig:
        """host.json; `DEVHOST_QUEUE_VISIBILITY_TIMEOUT` (seconds) shortens the retry delay
        for tests that make messages fail on purpose."""
        data = json.loads(path.read_text())
        extensions = data.get("extensions", {})
        queues = QueueSettings.from_host_json(data)
        if os.environ.get("DEVHOST_QUEUE_VISIBILITY_TIMEOUT"):
            queues = dataclasses.replace(
                queues, visibility_timeout=float(os.environ["DEVHOST_QUEUE_VISIBILITY_TIMEOUT"])
            )
        return cls(
            route_prefix=extensions.get("http", {}).get("routePrefix", "api"),
            queues=queues,
            hub_name=extensions.get("durableTask", {}).get("hubName", "TestHubName"),
            function_timeout=_timespan(data.get("functionTimeout"), 1800.0),
            durable_max_poll=_timespan(
                extensions.get("durableTask", {})
                .get("storageProvider", {})
                .get("maxQueuePollingInterval"),
                30.0,
            ),
        )


def _values(path: Path) -> dict[str, str]:
    values = json.loads(path.read_text()).get("Values", {})
    return {k: str(v) for k, v in values.items() if v is not None}


def _local_settings(root: Path) -> dict[str, str]:
    """The values of local.settings.json that differ from the sample's (the user's own)."""
    local, sample = root / "local.settings.json", root / "local.settings.sample.json"
    if not local.exists():
        shutil.copyfile(sample, local)
        print(f"created {local.name} from the sample (git-ignored: put local secrets there)")
    defaults = _values(sample)
    return {k: v for k, v in _values(local).items() if v != defaults.get(k)}


def _local_secret(name: str) -> str:
    """A random value kept under .data/ so it is stable across runs of the local host."""
    path = DATA / "devhost" / f"{name}.secret"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value


def app_settings(
    *, base_url: str, storage: str, root: Path = ROOT, isolated: bool = False
) -> dict[str, str]:
    """The environment the app runs with under the local host (`isolated`: without the
    developer's local.settings.json, for tests)."""
    issuer = f"{base_url}/.devhost"
    defaults = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "PIXELPIPE_AUTH_JWKS_URL": f"{issuer}/jwks.json",
        "PIXELPIPE_AUTH_ISSUERS": issuer,
        "PIXELPIPE_AUTH_AUDIENCES": DEV_AUDIENCE,
        "PIXELPIPE_AUTH_TENANTS": DEV_TENANT,
        "PIXELPIPE_WEBHOOK_ALLOW_PRIVATE": "true",
        "PIXELPIPE_SECRET_WEBHOOK_SIGNING_KEY": _local_secret("webhook"),
        "PIXELPIPE_LOCAL_SECRETS_STORE": str(DATA / "secrets" / "local-secrets.json"),
    }
    values = {
        **_values(root / "local.settings.sample.json"),
        **defaults,
        **({} if isolated else _local_settings(root)),
    }
    if values.get("AzureWebJobsStorage", "").lower().startswith("usedevelopmentstorage"):
        values["AzureWebJobsStorage"] = storage  # the Azurite this host started
    return {**values, **{k: v for k, v in os.environ.items() if k in values}}
