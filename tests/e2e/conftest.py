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
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.azurite import Azurite, free_ports
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
class LocalHost:
    azurite: Azurite
    data: Path
    port: int
    workers: int = 2
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> LocalHost:
        self.log = self.data / f"devhost-{time.time():.0f}.log"
        env = {
            **os.environ,
            "DEVHOST_DATA": str(self.data),
            "DEVHOST_FAULTS": json.dumps(FAULTS),
            "DEVHOST_QUEUE_VISIBILITY_TIMEOUT": "1",
            "DEVHOST_QUEUE_LEASE": "4",
            **self.env,
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devhost",
                    "run",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                    "--isolated",
                    "--azurite-ports",
                    str(self.azurite.blob_port),
                    str(self.azurite.queue_port),
                    str(self.azurite.table_port),
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the local host did not start: {self.tail()}")
            time.sleep(0.2)

    def kill(self) -> None:
        """Kill the host and its workers at once, as a crash would (no clean shutdown)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text().splitlines()[-lines:]) if self.log else ""

    # -- client helpers ------------------------------------------------------------------------

    def token(self, sub: str = "e2e-user", **body: Any) -> str:
        reply = requests.post(f"{self.url}/.devhost/token", json={"sub": sub, **body}, timeout=10)
        reply.raise_for_status()
        return str(reply.json()["access_token"])

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
