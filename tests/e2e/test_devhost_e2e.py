"""`make run`'s lifecycle and `make demo`, as a user meets them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devhost.azurite import Azurite, free_ports, port_open
from tests.e2e.conftest import ROOT, LocalHost, wait_until

pytestmark = [pytest.mark.azurite, pytest.mark.slow]


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(child) for child in text)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_sigterm_stops_workers_and_the_azurite_it_started(tmp_path):
    ports = free_ports(4)
    env = {**os.environ, "DEVHOST_DATA": str(tmp_path)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devhost",
            "run",
            "--port",
            str(ports[0]),
            "--workers",
            "2",
            "--azurite-ports",
            *map(str, ports[1:]),
            "--in-memory",
            "--isolated",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        banner = b""
        while b"Ctrl-C stops everything" not in banner:
            line = process.stdout.readline()
            assert line, "the host exited before it was ready"
            banner += line
        assert f"http://127.0.0.1:{ports[0]}/api".encode() in banner
        assert b"/.devhost/token" in banner and b"Authorization: Bearer" in banner
        # two workers and Azurite
        spawned = wait_until(lambda: len(children(process.pid)) >= 3 and children(process.pid))
        assert all(port_open(p) for p in ports[1:])
        process.send_signal(signal.SIGTERM)  # the main process only
        assert process.wait(60) == 0
        wait_until(lambda: not any(alive(pid) for pid in spawned), timeout=30)
        assert not any(port_open(p) for p in ports[1:])  # its Azurite is gone too
    finally:
        if process.poll() is None:
            process.kill()


def test_an_azurite_already_running_is_reused_and_left_running(tmp_path):
    storage = Azurite.on_free_ports().start()
    try:
        host = LocalHost(storage, tmp_path, free_ports(1)[0], workers=1).start()
        assert "reusing the storage emulator" in host.log.read_text()
        host.stop()
        assert storage.running
    finally:
        storage.stop()


def test_make_demo_prints_links_and_saves_outputs(local_host, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "devhost",
            "demo",
            "--port",
            str(local_host.port),
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={**os.environ, "DEVHOST_DATA": str(local_host.data)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "job succeeded" in done.stdout and "http://127.0.0.1:" in done.stdout
    (job_dir,) = tmp_path.iterdir()
    assert sorted(p.name for p in job_dir.iterdir()) == ["large.webp", "medium.webp", "thumb.webp"]
