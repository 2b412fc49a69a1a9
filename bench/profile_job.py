#!/usr/bin/env python
"""Where the wall time of one job goes, end to end through devhost.

    .venv/bin/python bench/profile_job.py [--job small|big] [--poll S] [--repeat N]
                                          [--keep-logs]

Starts devhost as `bench/pipeline.py` does (2 workers, in-memory Azurite), warms it up, lets
it go idle, then submits one job (`small`: the 1 MP latency job, 3 operations; `big`: one
12 MP job of the throughput workload, 4 operations) and polls it every `--poll` s until
terminal, then waits for its orchestration to complete. Nothing in the app or in devhost is
changed: the processes get a `sitecustomize` (on PYTHONPATH, this run only) that records
every storage request (azure-core's transport: method, resource, duration, the app or
devhost function that made it) and every Durable HTTP API call the SDK's client makes,
and devhost runs with `DEVHOST_LOG_LEVEL=DEBUG` (its per-invocation lines, the app's
`{"event": ...}` lines, the durable episodes).

stdout: JSON lines: one `timeline` entry per step (offsets from the submit, in ms), one
`queue_hop` per message (sent -> received: the polling delay), `episodes`, the storage round
trips by process role and by call site, and a `breakdown` that splits the job's wall time
into submit / queue waits / work / orchestration / client polling. A readable version goes
to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import (  # noqa: E402
    BIG,
    BIG_OPS,
    SMALL,
    SMALL_OPS,
    Devhost,
    emit,
    interrupts_as_exit,
    log,
)

# Installed into every Python process of the profiled host (and only there).
SITECUSTOMIZE = r"""
import json, os, sys, threading, time

_DIR = os.environ.get("PIXELPIPE_PROFILE_DIR")
_ROOT = os.environ.get("PIXELPIPE_PROFILE_ROOT", "")


def _site(depth):
    frames = []
    frame = sys._getframe(depth)
    while frame is not None and len(frames) < 2:
        name = frame.f_code.co_filename
        if name.startswith(_ROOT) and "/.venv/" not in name and "site-packages" not in name:
            frames.append(f"{name[len(_ROOT):].lstrip('/')}:{frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(frames) or "?"


def _writer():
    lock = threading.Lock()

    def write(record):
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with lock, open(os.path.join(_DIR, f"rt-{os.getpid()}.jsonl"), "a") as out:
            out.write(line)

    return write


def _install():
    write = _writer()
    try:
        from azure.core.pipeline.transport import RequestsTransport
    except Exception:
        RequestsTransport = None
    if RequestsTransport is not None:
        original = RequestsTransport.send

        def send(self, request, **kwargs):
            site = _site(2)
            started = time.time()
            status, messages = None, None
            try:
                response = original(self, request, **kwargs)
                status = response.status_code
                url = request.url.split("?")[0]
                if request.method == "GET" and url.endswith("/messages"):
                    body = response.internal_response.content or b""
                    messages = body.count(b"<QueueMessage>")
                return response
            finally:
                url = request.url.split("?", 1)
                query = url[1] if len(url) > 1 else ""
                write({
                    "kind": "storage", "pid": os.getpid(), "t0": started, "t1": time.time(),
                    "method": request.method, "url": url[0], "query": query[:120],
                    "status": status, "messages": messages, "site": site,
                })

        RequestsTransport.send = send
    try:
        import aiohttp
    except Exception:
        return
    original_request = aiohttp.ClientSession._request

    async def _request(self, method, url, *args, **kwargs):
        site = _site(2)
        started = time.time()
        status = None
        try:
            response = await original_request(self, method, url, *args, **kwargs)
            status = response.status
            return response
        finally:
            write({
                "kind": "durable-api", "pid": os.getpid(), "t0": started, "t1": time.time(),
                "method": method, "url": str(url).split("?")[0], "status": status, "site": site,
            })

    aiohttp.ClientSession._request = _request


if _DIR:
    _install()
"""

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\d+) (\S+) (.*)$")


@dataclass
class Line:
    t: float
    pid: int
    logger: str
    text: str
    data: dict[str, Any] | None


def parse_log(path: Path) -> list[Line]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        match = LOG_LINE.match(raw)
        if not match:
            continue
        stamp, pid, logger, text = match.groups()
        t = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        data = None
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except ValueError:
                data = None
        lines.append(Line(t, int(pid), logger, text, data))
    return lines


def load_records(folder: Path) -> list[dict[str, Any]]:
    records = []
    for path in folder.glob("rt-*.jsonl"):
        for raw in path.read_text().splitlines():
            try:
                records.append(json.loads(raw))
            except ValueError:
                continue
    return sorted(records, key=lambda r: r["t0"])


def resource(record: dict[str, Any], ports: dict[int, str]) -> tuple[str, str]:
    """(service, resource) of a request: ("queue", "ops"), ("table", "jobs"), ..."""
    url = record["url"]
    if record["kind"] == "durable-api":
        return "durable-api", re.sub(r"/[0-9a-f]{32}", "/<id>", url.split("durabletask", 1)[-1])
    match = re.match(r"https?://[^:/]+:(\d+)/devstoreaccount1/?([^/(?]*)", url)
    if not match:
        return "?", url
    return ports.get(int(match.group(1)), "?"), match.group(2) or "(account)"


def role_of(pid: int, host: Devhost) -> str:
    process = host.host.process if host.host is not None else None
    if process is not None and pid == process.pid:
        return "host"
    return f"worker-{pid}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", choices=("small", "big"), default="small")
    parser.add_argument("--poll", type=float, default=0.05, help="client polling interval, s")
    parser.add_argument("--repeat", type=int, default=1, help="profile this many jobs in turn")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)

    from devhost.sample import photo_jpeg

    size, ops = (SMALL, SMALL_OPS) if args.job == "small" else (BIG, BIG_OPS)
    image = photo_jpeg(*size)
    folder = Path(tempfile.mkdtemp(prefix="pixelpipe-profile-"))
    (folder / "site").mkdir()
    (folder / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (folder / "rt").mkdir()
    env = {
        "DEVHOST_LOG_LEVEL": "DEBUG",
        "PIXELPIPE_PROFILE_DIR": str(folder / "rt"),
        "PIXELPIPE_PROFILE_ROOT": str(ROOT),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(folder / "site"), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    host = Devhost(workers=2, data=folder, env=env)
    with interrupts_as_exit():
        try:
            profile(host, folder, image, ops, args)
        finally:
            host.stop()
            if not args.keep_logs:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                log(f"[profile] logs kept in {folder}")
    return 0


def profile(
    host: Devhost, folder: Path, image: bytes, ops: list[dict[str, Any]], args: argparse.Namespace
) -> None:
    host.start()
    log(f"[profile] devhost up on {host.url}; data in {folder}")
    for _ in range(2):
        host.run_job(image, ops, 0.1)
    for round_ in range(args.repeat):
        host.settle()
        window_start = time.time()
        result = host.run_job(image, ops, args.poll)
        job_id = result["id"]
        submitted_wall, accepted_wall = result["submitted"], result["accepted"]
        terminal_wall = result["seen"]
        # the orchestration completes after the job is terminal (manifest, commit)
        deadline = time.monotonic() + 30
        while host.running_instances() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        report(
            host,
            folder,
            job_id,
            window_start,
            submitted_wall,
            accepted_wall,
            terminal_wall,
            args,
            round_,
        )


def report(
    host: Devhost,
    folder: Path,
    job_id: str,
    window_start: float,
    submitted: float,
    accepted: float,
    terminal: float,
    args: argparse.Namespace,
    round_: int,
) -> None:
    lines = [ln for ln in parse_log(host.log_path) if ln.t >= window_start - 0.01]
    records = [r for r in load_records(folder / "rt") if r["t0"] >= window_start]
    assert host.host is not None
    azurite = host.host.azurite
    ports = {azurite.blob_port: "blob", azurite.queue_port: "queue", azurite.table_port: "table"}

    def res(record: dict[str, Any]) -> tuple[str, str]:
        return resource(record, ports)

    def ms(t: float) -> float:
        return round((t - submitted) * 1000, 1)

    steps: list[dict[str, Any]] = []

    def step(name: str, start: float, end: float, **extra: Any) -> None:
        steps.append(
            {"step": name, "start_ms": ms(start), "end_ms": ms(end), "ms": ms(end) - ms(start)}
            | extra
        )

    step("client: POST /api/jobs -> 202", submitted, accepted)
    completed_at = None
    for line in lines:
        data = line.data or {}
        if data.get("function") == "jobs" and data.get("method") == "POST":
            step("host: jobs (HTTP function)", line.t - data["ms"] / 1000, line.t)
        elif data.get("queue") and data.get("jobId", job_id) == job_id:
            name = data["function"] + (
                f" op {data['index']} {data['name']}" if "index" in data else ""
            )
            step(f"{role_of(line.pid, host)}: {name}", line.t - data["ms"] / 1000, line.t)
        elif data.get("event") in ("operation", "dispatch", "finalize") and data.get("job_id") in (
            job_id,
            None,
        ):
            label = data["event"] + (f" op {data['index']}" if "index" in data else "")
            step(f"{role_of(line.pid, host)}:   app {label}", line.t - data["ms"] / 1000, line.t)
        elif "durable: instance" in line.text and line.text.endswith("completed"):
            completed_at = line.t
        elif "durable: scheduled" in line.text:
            step(f"{role_of(line.pid, host)}: durable start_new", line.t, line.t)
    lease = None
    for r in records:
        if r["kind"] != "storage":
            continue
        if r["site"].startswith("devhost/durable/storage.py:_take_lease"):
            lease = r
        elif r["site"].startswith("devhost/durable/storage.py:_commit") and r["method"] == "PUT":
            begun = lease["t0"] if lease is not None else r["t0"]
            step(
                f"{role_of(r['pid'], host)}: orchestration episode (lease -> commit)",
                begun,
                r["t1"],
            )
            lease = None
        elif r["site"].startswith(
            "devhost/durable/storage.py:_send < devhost/durable/storage.py:_dispatch"
        ):
            what = "work item" if res(r)[1].endswith("-workitems") else "timer"
            step(f"{role_of(r['pid'], host)}: episode sends a {what}", r["t1"], r["t1"])
    step("client: saw terminal", terminal, terminal)
    steps.sort(key=lambda s: (s["start_ms"], s["end_ms"]))

    # Queue hops: each message sent, and the first receive on that queue that returned any.
    sends = [
        r
        for r in records
        if r["kind"] == "storage" and r["method"] == "POST" and r["url"].endswith("/messages")
    ]
    receives = [
        r
        for r in records
        if r["kind"] == "storage"
        and r["method"] == "GET"
        and r["url"].endswith("/messages")
        and r.get("messages")
    ]
    hops = []
    taken: Counter[int] = Counter()
    for send in sends:
        queue = res(send)[1]
        delay = re.search(r"visibilitytimeout=(\d+)", send.get("query", ""))
        if delay and int(delay.group(1)) > 0:
            continue  # a durable timer (invisible until it fires), not a hop
        for i, receive in enumerate(receives):
            if res(receive)[1] != queue or receive["t1"] < send["t1"]:
                continue
            if taken[i] >= receive["messages"]:
                continue
            taken[i] += 1
            hops.append(
                {
                    "queue": queue,
                    "sent_ms": ms(send["t1"]),
                    "received_ms": ms(receive["t1"]),
                    "wait_ms": round((receive["t1"] - send["t1"]) * 1000, 1),
                    "by": send["site"].split(" < ")[-1],
                }
            )
            break

    # Storage round trips, by role and by call site.
    by_role: dict[str, Counter[str]] = defaultdict(Counter)
    by_role_ms: dict[str, float] = defaultdict(float)
    by_site: Counter[str] = Counter()
    by_site_ms: dict[str, float] = defaultdict(float)
    idle_polls: Counter[str] = Counter()
    job_window_end = terminal
    for r in records:
        if r["t0"] > job_window_end:
            continue
        service, name = res(r)
        role = role_of(r["pid"], host)
        role = "host" if role == "host" else "workers"
        if r.get("messages") == 0:
            idle_polls[f"{role} {name}"] += 1
            continue
        by_role[role][service] += 1
        by_role_ms[role] += (r["t1"] - r["t0"]) * 1000
        key = f"{service} {r['method']} {name} @ {r['site']}"
        by_site[key] += 1
        by_site_ms[key] += (r["t1"] - r["t0"]) * 1000

    episodes = [s for s in steps if "episode (lease" in s["step"]]

    # The critical path: submit -> dispatch -> the operation that finished last -> fan-in
    # (event -> episode -> finalize work item) -> finalize -> the client's poll.
    def first(prefix: str, key: str = "start_ms") -> float | None:
        found = [s[key] for s in steps if prefix in s["step"]]
        return min(found) if found else None

    ops_steps = [s for s in steps if ": worker op " in s["step"]]
    last_op = max(ops_steps, key=lambda s: s["end_ms"]) if ops_steps else None
    dispatch_start, dispatch_end = first(": dispatch"), first(": dispatch", "end_ms")
    finalize = [s for s in steps if "app finalize" in s["step"]]
    breakdown: dict[str, float | None] = {}
    if last_op and dispatch_start is not None and dispatch_end is not None and finalize:
        fin = finalize[0]
        control = [h for h in hops if h["queue"].endswith("-control")]
        last_event = max(
            (h for h in control if h["sent_ms"] <= last_op["end_ms"] + 1),
            key=lambda h: h["sent_ms"],
        )
        fan_in_episode = [e for e in episodes if e["start_ms"] >= last_event["received_ms"] - 1]
        workitem = [h for h in hops if h["queue"].endswith("-workitems")]
        breakdown = {
            "submit_ms": ms(accepted),
            "jobs_queue_wait_ms": round(dispatch_start - ms(accepted), 1),
            "dispatch_ms": round(dispatch_end - dispatch_start, 1),
            "ops_queue_wait_ms": round(last_op["start_ms"] - dispatch_end, 1),
            "last_op_ms": last_op["ms"],
            "control_queue_wait_ms": last_event["wait_ms"],
            "episode_ms": fan_in_episode[0]["ms"] if fan_in_episode else None,
            "workitems_queue_wait_ms": workitem[-1]["wait_ms"] if workitem else None,
            "fan_in_total_ms": round(fin["start_ms"] - last_op["end_ms"], 1),
            "finalize_ms": fin["ms"],
            "client_lag_ms": round(ms(terminal) - fin["end_ms"], 1),
            "total_ms": ms(terminal),
        }
    wall_ms = ms(terminal)
    emit({"bench": "profile", "job": job_id, "kind": args.job, "round": round_, "wall_ms": wall_ms})
    breakdown = {k: None if v is None else round(v, 1) for k, v in breakdown.items()}
    emit({"bench": "profile", "breakdown": breakdown})
    for s in steps:
        emit({"bench": "profile", "timeline": True, **s})
    for h in hops:
        emit({"bench": "profile", "queue_hop": True, **h})
    emit(
        {
            "bench": "profile",
            "episodes": len(episodes),
            "completed_ms": ms(completed_at) if completed_at else None,
        }
    )
    emit(
        {
            "bench": "profile",
            "round_trips": {role: dict(c) for role, c in by_role.items()},
            "round_trip_ms": {role: round(v, 1) for role, v in by_role_ms.items()},
            "idle_polls": dict(idle_polls),
        }
    )
    for key, count in by_site.most_common():
        emit(
            {"bench": "profile", "call_site": key, "count": count, "ms": round(by_site_ms[key], 1)}
        )

    # A readable version.
    log(f"\n== job {job_id} ({args.job}): submit -> client saw terminal {wall_ms:.0f} ms")
    for s in steps:
        log(f"  {s['start_ms']:8.1f} {s['end_ms']:8.1f} {s['ms']:7.1f}  {s['step']}")
    log("  queue hops (sent -> first receive that returned it):")
    for h in hops:
        log(
            f"    {h['queue']:<22} sent {h['sent_ms']:8.1f}  "
            f"wait {h['wait_ms']:7.1f} ms  by {h['by']}"
        )
    log(f"  episodes committed: {len(episodes)}")
    log("  critical path: " + ", ".join(f"{k} {v}" for k, v in breakdown.items()))
    for role, c in by_role.items():
        log(
            f"  {role}: {sum(c.values())} storage/durable-API requests {dict(c)}, "
            f"{by_role_ms[role]:.0f} ms"
        )
    log(f"  idle receive polls during the job: {dict(idle_polls)}")
    for key, count in by_site.most_common(25):
        log(f"    {count:3d} {by_site_ms[key]:7.1f} ms  {key}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
