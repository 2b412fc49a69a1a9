"""The local host as a child process: what the end-to-end tests and the benchmarks start.

`python -m devhost run` runs in its own process group (so the whole host, workers included,
can be stopped or killed at once, as a crash would) against an Azurite the caller owns (so
the caller can restart storage, and it is stopped even if the host must be killed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from devhost.azurite import Azurite, free_ports
from devhost.config import ROOT

__all__ = ["HostProcess"]


@dataclass
class HostProcess:
    azurite: Azurite
    data: Path  # DEVHOST_DATA: issuer key, secrets, logs
    port: int = 0  # 0: a free one
    workers: int = 2
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> HostProcess:
        """Start the host and wait until it answers /api/health."""
        if not self.port:
            self.port = free_ports(1)[0]
        self.data.mkdir(parents=True, exist_ok=True)
        self.log = self.data / f"devhost-{time.time():.0f}.log"
        env = {**os.environ, "DEVHOST_DATA": str(self.data), **self.env}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - this interpreter, this package
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
                raise RuntimeError(f"the local host did not start:\n{self.tail()}")
            time.sleep(0.2)

    def kill(self) -> None:
        """Kill the host and its workers at once, as a crash would (no clean shutdown)."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """Stop the host cleanly (SIGTERM to its group), killing it if it does not stop."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        except ProcessLookupError:
            pass

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text().splitlines()[-lines:]) if self.log else ""

    def token(self, sub: str = "dev-user", **body: object) -> str:
        reply = requests.post(f"{self.url}/.devhost/token", json={"sub": sub, **body}, timeout=10)
        reply.raise_for_status()
        return str(reply.json()["access_token"])
