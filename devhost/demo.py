"""`make demo`: one job through the local host, end to end, then the links to its results.

Uses a host already running on the port (`make run`), or starts one (and stops it after).
The outputs are also saved under `.data/demo/<job>/`, because the links point at Azurite and
stop working while it is not running.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from devhost.azurite import free_ports
from devhost.config import ROOT
from devhost.sample import photo_jpeg

__all__ = ["run_demo"]


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/api/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _wait_healthy(base: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not _healthy(base):
        if process.poll() is not None:
            raise RuntimeError("the local host exited during start-up")
        if time.monotonic() > deadline:
            raise TimeoutError("the local host did not start in time")
        time.sleep(0.3)


def _shown(path: Path) -> Path:
    """A saved file's path, relative to the repository when it is inside it."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def run_demo(port: int, *, out_dir: Path) -> int:
    base = f"http://127.0.0.1:{port}"
    process = None
    if not _healthy(base):
        port = free_ports(1)[0]
        base = f"http://127.0.0.1:{port}"
        print(f"starting a local host on {base} for the demo ...", flush=True)
        process = subprocess.Popen(  # noqa: S603 - this interpreter, this package
            [sys.executable, "-m", "devhost", "run", "--port", str(port)],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
        )
    try:
        if process is not None:
            _wait_healthy(base, process)
        return _demo(base, out_dir)
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)


def _demo(base: str, out_dir: Path) -> int:
    token = requests.post(f"{base}/.devhost/token", json={"sub": "demo"}, timeout=10).json()[
        "access_token"
    ]
    headers = {"Authorization": f"Bearer {token}"}
    print("making a 12 MP photo-like JPEG ...", flush=True)
    image = photo_jpeg(4000, 3000)
    started = time.monotonic()
    reply = requests.post(
        f"{base}/api/jobs",
        params={"preset": "web"},
        data=image,
        headers={**headers, "Content-Type": "image/jpeg"},
        timeout=60,
    )
    reply.raise_for_status()
    job_id = reply.json()["id"]
    print(f"submitted job {job_id} (preset 'web', {len(image) / 1e6:.1f} MB)", flush=True)
    job: dict[str, Any] = {}
    while time.monotonic() - started < 300:
        job = requests.get(f"{base}/api/jobs/{job_id}", headers=headers, timeout=10).json()
        if job["status"] in ("succeeded", "partial", "failed"):
            break
        time.sleep(0.25)
    print(f"job {job['status']} in {time.monotonic() - started:.1f} s", flush=True)
    target = out_dir / job_id
    target.mkdir(parents=True, exist_ok=True)
    for op in job.get("operations", []):
        output = op.get("output")
        if not output:
            print(f"  {op['name']:<8} {op['status']}: {op.get('error', {}).get('message')}")
            continue
        path = target / f"{op['name']}.{output['format']}"
        path.write_bytes(requests.get(output["url"], timeout=30).content)
        print(
            f"  {op['name']:<8} {output['width']}x{output['height']} {output['format']} "
            f"{output['bytes'] / 1e3:.0f} kB  {_shown(path)}"
        )
        print(f"           {output['url']}")
    print(
        f"links expire at {job['operations'][0].get('output', {}).get('expiresAt')}; the "
        f"files above stay."
    )
    return 0 if job.get("status") == "succeeded" else 1
