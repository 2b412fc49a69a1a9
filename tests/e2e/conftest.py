"""End-to-end fixtures: the local host as `make run` starts it, over real HTTP.

`python -m devhost run` runs in its own process group (so a test can kill the whole host, as
a crash would) against an Azurite with a data directory (so a test can restart storage
mid-job). Fault injection rules are keyed on operation names, so each test picks its fault
by naming an operation: `always-fails`, `dies-after` (the worker dies after writing its
output, before acknowledging), `dies-before` (the worker dies as it starts),
`never-finishes` (the invocation hangs).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.azurite import Azurite, free_ports
from devhost.process import HostProcess
from shared.config import Settings
from shared.runtime import Runtime
from shared.security.secrets import LocalSecretProvider

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("succeeded", "partial", "failed")

FAULTS = [
    {"function": "worker", "match": {"name": "always-fails"}, "action": "fail"},
    {"function": "worker", "match": {"name": "dies-after"}, "action": "exit-after", "times": 1},
    {"function": "worker", "match": {"name": "dies-before"}, "action": "exit-before", "times": 1},
    {"function": "worker", "match": {"name": "never-finishes"}, "action": "hang"},
]


@dataclass
class LocalHost(HostProcess):
    """The host with the fault rules, quick retries and short leases the fault tests use."""

    def start(self, timeout: float = 60) -> LocalHost:
        self.env = {
            "DEVHOST_FAULTS": json.dumps(FAULTS),
            "DEVHOST_QUEUE_VISIBILITY_TIMEOUT": "1",
            "DEVHOST_QUEUE_LEASE": "4",
            **self.env,
        }
        super().start(timeout)
        return self

    # -- client helpers ------------------------------------------------------------------------

    def headers(self, sub: str = "e2e-user") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub)}"}

    def submit(
        self,
        data: bytes,
        spec: dict[str, Any] | None = None,
        *,
        sub: str = "e2e-user",
        **kwargs: Any,
    ) -> requests.Response:
        files: dict[str, Any] = {"file": ("photo.jpg", data, "image/jpeg")}
        if spec is not None:
            files["spec"] = (None, json.dumps(spec), "application/json")
        headers = {**self.headers(sub), **kwargs.pop("headers", {})}
        return requests.post(
            f"{self.url}/api/jobs", files=files, headers=headers, timeout=60, **kwargs
        )

    def job(self, job_id: str, sub: str = "e2e-user") -> dict[str, Any]:
        reply = requests.get(f"{self.url}/api/jobs/{job_id}", headers=self.headers(sub), timeout=30)
        reply.raise_for_status()
        return dict(reply.json())

    def wait(self, job_id: str, *, sub: str = "e2e-user", timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        headers = self.headers(sub)
        while True:
            try:
                reply = requests.get(f"{self.url}/api/jobs/{job_id}", headers=headers, timeout=10)
                if reply.status_code == 200 and reply.json()["status"] in TERMINAL:
                    return dict(reply.json())
            except requests.RequestException:
                pass  # the host may be restarting
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish:\n{self.tail()}")
            time.sleep(0.2)

    def runtime(self) -> Runtime:
        """The app's own view of this host's storage (for inventories and raw reads)."""
        settings = Settings.from_env(
            {
                "AzureWebJobsStorage": self.azurite.connection_string,
                "PIXELPIPE_LOCAL_SECRETS_STORE": str(self.data / "secrets" / "local-secrets.json"),
            }
        )
        return Runtime.create(
            settings,
            secrets=LocalSecretProvider(
                store_path=str(self.data / "secrets" / "local-secrets.json")
            ),
        )


def start_host(
    tmp_path_factory: pytest.TempPathFactory, name: str, *, workers: int = 2, **env: str
) -> tuple[LocalHost, Azurite]:
    data = tmp_path_factory.mktemp(name)
    azurite = Azurite.on_free_ports(location=data / "azurite").start()
    host = LocalHost(azurite, data, free_ports(1)[0], workers=workers, env=env)
    try:
        host.start()
    except Exception:
        azurite.stop()
        raise
    return host, azurite


@pytest.fixture(scope="session")
def local_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHost]:
    host, azurite = start_host(tmp_path_factory, "devhost")
    try:
        yield host
    finally:
        host.stop()
        azurite.stop()


def wait_until(predicate: Any, timeout: float = 30, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)
