"""Start and stop the Azurite storage emulator (from the repo's node_modules).

Always on loopback, always with telemetry off, always with an explicit data location (or in
memory): Azurite otherwise phones home and drops its files in the working directory.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ACCOUNT", "ACCOUNT_KEY", "Azurite", "free_ports", "port_open"]

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, the same in every installation).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def binary() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise FileNotFoundError("Azurite is not installed: run `make setup` (npm ci).")


@dataclass
class Azurite:
    blob_port: int = 10000
    queue_port: int = 10001
    table_port: int = 10002
    location: Path | None = None  # None: in memory
    cert: Path | None = None  # HTTPS (needed for OAuth / user-delegation SAS)
    key: Path | None = None
    oauth: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def on_free_ports(cls, **kwargs: object) -> Azurite:
        blob, queue, table = free_ports(3)
        return cls(blob, queue, table, **kwargs)  # type: ignore[arg-type]

    @property
    def scheme(self) -> str:
        return "https" if self.cert else "http"

    def endpoint(self, port: int) -> str:
        return f"{self.scheme}://127.0.0.1:{port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={ACCOUNT};"
            f"AccountKey={ACCOUNT_KEY};BlobEndpoint={self.endpoint(self.blob_port)};"
            f"QueueEndpoint={self.endpoint(self.queue_port)};"
            f"TableEndpoint={self.endpoint(self.table_port)};"
        )

    @property
    def running(self) -> bool:
        return all(port_open(p) for p in (self.blob_port, self.queue_port, self.table_port))

    def command(self) -> list[str]:
        cmd = [
            binary(),
            "--silent",
            "--disableTelemetry",
            "--blobHost",
            "127.0.0.1",
            "--queueHost",
            "127.0.0.1",
            "--tableHost",
            "127.0.0.1",
            "--blobPort",
            str(self.blob_port),
            "--queuePort",
            str(self.queue_port),
            "--tablePort",
            str(self.table_port),
        ]
        if self.location is None:
            cmd.append("--inMemoryPersistence")
        else:
            self.location.mkdir(parents=True, exist_ok=True)
            cmd += ["--location", str(self.location)]
        if self.cert and self.key:
            cmd += ["--cert", str(self.cert), "--key", str(self.key)]
        if self.oauth:
            cmd += ["--oauth", "basic"]
        return cmd

    def start(self, timeout: float = 30.0) -> Azurite:
        self.process = subprocess.Popen(  # noqa: S603 - our own command line
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.location or ROOT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self.running:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"Azurite exited at start: {err[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("Azurite did not start in time")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()
