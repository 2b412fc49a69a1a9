#!/usr/bin/env python
"""The whole pipeline against its ideal: the same jobs in-process and through devhost.

    .venv/bin/python bench/pipeline.py [--quick] [--rounds N] [--jobs N] [--latency-reps N]
                                       [--workers N] [--poll S] [--latency-poll S]
                                       [--host-env NAME=VALUE ...] [--keep-logs]

A full run (5 rounds, 15 latency samples) takes about 3 minutes on the 2-core reference
machine; `--quick` (1 round, 1 sample) about 40 s. `bench/profile_job.py` shows where the
time of one job goes.

Two workloads, each done two ways in one run:

* throughput: `--jobs` (10) jobs of one photo-like 12 MP JPEG x 4 operations, all submitted
  at once;
* latency: a single 1 MP job with 3 operations, on an idle system.

(a) *ideal*: the imaging core (`shared.imaging.run`) on a 2-process pool, one task per
    (job, operation) pair, each task single-threaded: both cores busy with nothing but
    decode-operate-encode. The images are in the pool's processes before the clock starts
    and only sizes come back. The latency job uses the same pool: its 3 operations start at
    once on the 2 processes, as the platform fans them out to 2 workers.
(b) *platform*: devhost (`python -m devhost run --workers 2 --isolated --in-memory` on free
    ports, with its own in-memory Azurite) over HTTP: every job submitted from its own client
    thread (raw body + `?spec=`), then polled (`GET /api/jobs/<id>`, every `--poll` s = 0.5 s
    like the CLI and the web page; the latency job every `--latency-poll` s) until terminal.
    A job's end is the moment it became terminal on the server: the end of its `finalize`
    activity, whose `{"event": "finalize"}` line devhost logs with a millisecond timestamp
    (the job row turns terminal inside it). So the client's polling interval costs the
    platform the CPU its GETs take, but does not add its own granularity to the result;
    what the client saw is reported too (`client_wall_s`, `client_latency_s`). Wall time
    runs from the first submit to the last job's end. Before each (b) measurement the host
    is idle: no orchestration running, and `IDLE_GAP` seconds without work, so every
    listener is at its longest polling interval, as a job arriving at an idle app finds it.

Operations (12 MP): `resize` to 1920 wide (the everyday web size; decoded with JPEG DCT
shrink-on-load), `thumbnail` 256 crop (cheap: 1/8 decode, so nearly pure overhead),
`grayscale` (full-size luma decode and a full 12 MP encode) and `sharpen` (full decode, an
unsharp mask over 12 MP, full encode: the costly one). Their in-process costs are roughly
0.2, 0.02, 0.16 and 0.55 s on one core of the reference machine, so the job mixes a nearly
free operation with a heavy one, as real specs do. Latency job (1 MP): `resize` 640,
`thumbnail` 256 crop, `sharpen`.

Rounds interleave the two ways (ab, ba, ab, ...) so machine noise hits both; medians across
rounds are reported. stdout carries JSON lines only (one per measurement, one for the
summary); progress goes to stderr. The host is stopped at the end, also on errors and Ctrl-C.

Every measurement line carries `cpu_s`: CPU seconds used meanwhile by role (`pool` = (a)'s
processes; `host`, `workers`, `azurite`, `client` = (b)'s; `other` = the rest of the machine,
i.e. noise from outside this run: a measurement with a large `other` is not trustworthy).

Summary: `efficiency` = a_wall / b_wall (throughput; 1.0 = no platform overhead),
`latency_overhead` = b_latency / a_latency, and `p50_s`/`p95_s` of the per-job durations of
the (b) throughput jobs across all rounds; medians of the rounds' CPU use by role, and
`cpu_efficiency` = (a)'s CPU seconds / (b)'s (host + workers + azurite + client): the
efficiency both would reach if each kept the two cores busy, which foreign load on the
machine distorts much less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from devhost.azurite import Azurite  # noqa: E402
from devhost.process import HostProcess  # noqa: E402

# -- What runs ----------------------------------------------------------------------------

BIG = (4000, 3000)  # 12 MP
SMALL = (1152, 864)  # 1 MP
BIG_OPS: list[dict[str, Any]] = [
    {"op": "resize", "width": 1920},
    {"op": "thumbnail", "size": 256, "crop": True},
    {"op": "grayscale"},
    {"op": "sharpen"},
]
SMALL_OPS: list[dict[str, Any]] = [
    {"op": "resize", "width": 640},
    {"op": "thumbnail", "size": 256, "crop": True},
    {"op": "sharpen"},
]
TERMINAL = ("succeeded", "partial", "failed")
IDLE_GAP = 2.5  # s without work before a (b) measurement: longer than every poll backoff
JOB_TIMEOUT = 300.0


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# -- Where the CPU goes (Linux /proc): this run's processes by role, and everyone else -------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _TICK


@dataclass
class CpuMeter:
    """CPU seconds per role between `start()` and `stop()`: `client` (this process and its
    request threads), `pool` (a), `host` (devhost's main process: HTTP, orchestrations),
    `workers` (devhost's worker processes), `azurite`, and `other` (everything else on the
    machine: noise from outside this run)."""

    roles: Callable[[], dict[int, tuple[str, str]]]  # pid -> (its role, its children's)
    _start: dict[int, tuple[str, float]] = field(default_factory=dict)
    _busy: float = 0.0

    def _sample(self) -> dict[int, tuple[str, float]]:
        found: dict[int, tuple[str, float]] = {}
        children: dict[int, list[int]] = {}
        cpu: dict[int, float] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                stat = _stat(int(entry.name))
                if stat is not None:
                    children.setdefault(stat[0], []).append(int(entry.name))
                    cpu[int(entry.name)] = stat[1]
        roles = self.roles()

        def walk(pid: int, role: str) -> None:
            if pid in cpu and pid not in found:
                own, inherited = roles.get(pid, (role, role))
                found[pid] = (own, cpu[pid])
                for child in children.get(pid, []):
                    walk(child, inherited)

        walk(os.getpid(), "client")
        return found

    def start(self) -> None:
        self._start = self._sample()
        self._busy = _busy_seconds()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        busy = _busy_seconds() - self._busy
        used: dict[str, float] = {}
        for pid, (role, seconds) in end.items():
            used[role] = used.get(role, 0.0) + seconds - self._start.get(pid, (role, 0.0))[1]
        used["other"] = max(0.0, busy - sum(used.values()))
        return {role: round(seconds, 2) for role, seconds in sorted(used.items())}


# -- (a): the imaging core on a process pool ---------------------------------------------

_IMAGES: dict[str, bytes] = {}
_CHAINS: dict[str, list[Any]] = {}


def _pool_init(images: dict[str, bytes], specs: dict[str, list[dict[str, Any]]]) -> None:
    from shared.jobs.spec import parse_spec

    _IMAGES.update(images)
    for name, ops in specs.items():
        _CHAINS[name] = [o.chain for o in parse_spec({"operations": ops}).operations]


def _pool_run(image: str, spec: str, index: int) -> tuple[int, int, int]:
    from shared.imaging import run

    out = run(_IMAGES[image], _CHAINS[spec][index], threads=1)
    return out.width, out.height, len(out.data)


def _pool_pid() -> int:
    time.sleep(0.2)  # so that each process of the pool takes one
    return os.getpid()


class Ideal:
    """(a): one task per (job, operation) on a 2-process pool."""

    def __init__(self, images: dict[str, bytes], processes: int = 2) -> None:
        self.pool = ProcessPoolExecutor(
            processes,
            initializer=_pool_init,
            initargs=(images, {"big": BIG_OPS, "small": SMALL_OPS}),
        )
        self.processes = processes

    def warm(self) -> None:
        pids = {f.result() for f in [self.pool.submit(_pool_pid) for _ in range(self.processes)]}
        for _ in range(2):  # every process, every operation, once (imports, first-call costs)
            futures = [self.pool.submit(_pool_run, "small", "big", i) for i in range(len(BIG_OPS))]
            futures += [
                self.pool.submit(_pool_run, "small", "small", i) for i in range(len(SMALL_OPS))
            ]
            for f in futures:
                f.result()
        log(f"[a] pool of {len(pids)} processes warm")

    def run_jobs(self, jobs: int, image: str, spec: str, ops: int) -> dict[str, Any]:
        started = time.perf_counter()
        done_at: dict[int, float] = {}
        remaining = dict.fromkeys(range(jobs), ops)
        lock = threading.Lock()

        def finished(job: int) -> Callable[[Future[Any]], None]:
            def callback(_: Future[Any]) -> None:
                with lock:
                    remaining[job] -= 1
                    if remaining[job] == 0:
                        done_at[job] = time.perf_counter()

            return callback

        futures = []
        for job in range(jobs):
            for index in range(ops):
                future = self.pool.submit(_pool_run, image, spec, index)
                future.add_done_callback(finished(job))
                futures.append(future)
        for future in futures:
            future.result()
        wall = time.perf_counter() - started
        with lock:
            durations = [done_at[j] - started for j in range(jobs)]
        return {"wall_s": wall, "durations": durations}

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


# -- (b): devhost over HTTP --------------------------------------------------------------

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \d+ \S+ (\{.*\})\s*$")


def log_time(stamp: str) -> float:
    """A devhost log timestamp (local time, ms) as time.time()."""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


@dataclass
class Run:
    """One (b) measurement. `wall_s`/`durations` end when a job became terminal on the
    server (its finalize), `client_wall_s` when the client's poll saw it."""

    wall_s: float
    durations: list[float]
    client_wall_s: float
    submit_s: list[float]
    polls: int
    ids: list[str]


@dataclass
class Devhost:
    """`python -m devhost run` (a `devhost.process.HostProcess`) with its own in-memory
    Azurite, started here so it is stopped even if the host has to be killed."""

    workers: int = 2
    data: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pixelpipe-bench-")))
    env: dict[str, str] = field(default_factory=dict)
    host: HostProcess | None = None
    _local: threading.local = field(default_factory=threading.local)
    _token: str = ""

    @property
    def url(self) -> str:
        assert self.host is not None
        return self.host.url

    @property
    def log_path(self) -> Path:
        assert self.host is not None and self.host.log is not None
        return self.host.log

    def start(self, timeout: float = 90) -> Devhost:
        azurite = Azurite.on_free_ports(location=None).start()
        self.host = HostProcess(azurite, self.data, workers=self.workers, env=self.env)
        try:
            self.host.start(timeout)
        except Exception:
            azurite.stop()
            raise
        self._token = self.host.token("bench")
        return self

    def stop(self) -> None:
        host, self.host = self.host, None
        if host is not None:
            host.stop()
            host.azurite.stop()
            self.host = host  # keep the log path readable

    def tail(self, lines: int = 30) -> str:
        return self.host.tail(lines) if self.host is not None else ""

    # -- client ----------------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self._token}"
        return session

    def submit(self, data: bytes, ops: list[dict[str, Any]]) -> str:
        reply = self.session.post(
            f"{self.url}/api/jobs",
            params={"spec": json.dumps({"operations": ops})},
            data=data,
            headers={"Content-Type": "image/jpeg"},
            timeout=120,
        )
        if reply.status_code != 202:
            raise RuntimeError(f"submit: {reply.status_code} {reply.text[:300]}")
        return str(reply.json()["id"])

    def status(self, job_id: str) -> dict[str, Any]:
        reply = self.session.get(f"{self.url}/api/jobs/{job_id}", timeout=30)
        reply.raise_for_status()
        return dict(reply.json())

    def run_job(self, data: bytes, ops: list[dict[str, Any]], poll: float) -> dict[str, Any]:
        """Submit, poll until terminal. Times are wall-clock (time.time()), comparable with
        devhost's log: "submitted", "accepted" (202), "seen" (the terminal poll)."""
        submitted = time.time()
        job_id = self.submit(data, ops)
        accepted = time.time()
        deadline = time.monotonic() + JOB_TIMEOUT
        polls = 0
        while True:
            document = self.status(job_id)
            polls += 1
            if document["status"] in TERMINAL:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not terminal after {JOB_TIMEOUT}s")
            time.sleep(poll)
        return {
            "id": job_id,
            "status": document["status"],
            "submitted": submitted,
            "accepted": accepted,
            "seen": time.time(),
            "polls": polls,
        }

    def finalized(self, job_ids: list[str], timeout: float = 10) -> dict[str, float]:
        """When each job became terminal: the end of its `finalize` activity (the job row is
        made terminal inside it), from the app's `{"event": "finalize"}` log line."""
        wanted = set(job_ids)
        deadline = time.monotonic() + timeout
        while True:
            found: dict[str, float] = {}
            for line in self.log_path.read_text(errors="replace").splitlines():
                if '"event":"finalize"' not in line:
                    continue
                match = LOG_LINE.match(line)
                if not match:
                    continue
                try:
                    job_id = json.loads(match.group(2))["job_id"]
                except (ValueError, KeyError):
                    continue
                if job_id in wanted and job_id not in found:
                    found[job_id] = log_time(match.group(1))
            if len(found) == len(wanted) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def measure(self, jobs: int, data: bytes, ops: list[dict[str, Any]], poll: float) -> Run:
        """`jobs` jobs submitted at once, each from its own thread, each polled until
        terminal."""
        barrier = threading.Barrier(jobs)

        def one(_: int) -> dict[str, Any]:
            self.session  # noqa: B018 - a connection-ready session before the barrier
            barrier.wait()
            return self.run_job(data, ops, poll)

        with ThreadPoolExecutor(jobs) as threads:
            results = list(threads.map(one, range(jobs)))
        bad = [r for r in results if r["status"] != "succeeded"]
        if bad:
            raise RuntimeError(f"{len(bad)} job(s) did not succeed: {bad[:3]}")
        terminal = self.finalized([r["id"] for r in results])
        first = min(r["submitted"] for r in results)
        ends = [terminal.get(r["id"], r["seen"]) for r in results]
        if len(terminal) < len(results):
            log(f"[b] WARNING: {len(results) - len(terminal)} finalize line(s) missing")
        return Run(
            wall_s=max(ends) - first,
            durations=[end - r["submitted"] for end, r in zip(ends, results, strict=True)],
            client_wall_s=max(r["seen"] for r in results) - first,
            submit_s=[r["accepted"] - r["submitted"] for r in results],
            polls=sum(r["polls"] for r in results),
            ids=[r["id"] for r in results],
        )

    def running_instances(self) -> int:
        reply = requests.get(
            f"{self.url}/runtime/webhooks/durabletask/instances/",
            params={"runtimeStatus": "Pending,Running", "showInput": "false"},
            timeout=30,
        )
        reply.raise_for_status()
        return len(reply.json())

    def settle(self, gap: float = IDLE_GAP, timeout: float = 60) -> None:
        """Wait until no orchestration is pending or running, then `gap` more seconds."""
        deadline = time.monotonic() + timeout
        while self.running_instances():
            if time.monotonic() > deadline:
                raise TimeoutError("orchestrations still running")
            time.sleep(0.2)
        time.sleep(gap)


# -- Driver --------------------------------------------------------------------------------


def make_images() -> dict[str, bytes]:
    from devhost.sample import photo_jpeg

    started = time.perf_counter()
    images = {
        "big": photo_jpeg(*BIG),
        "small": photo_jpeg(*SMALL),
    }
    log(
        f"[bench] images: 12 MP {len(images['big']) / 1e6:.2f} MB, "
        f"1 MP {len(images['small']) / 1e6:.2f} MB ({time.perf_counter() - started:.1f}s)"
    )
    return images


@contextmanager
def interrupts_as_exit() -> Iterator[None]:
    """SIGTERM ends the run like Ctrl-C does, through the `finally` blocks."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, under a minute")
    parser.add_argument("--rounds", type=int, help="throughput rounds (default 5; quick 1)")
    parser.add_argument(
        "--latency-reps", type=int, help="latency samples per round (default 3; quick 1)"
    )
    parser.add_argument("--jobs", type=int, default=10, help="12 MP jobs per throughput round")
    parser.add_argument("--workers", type=int, default=2, help="devhost worker processes")
    parser.add_argument(
        "--poll",
        type=float,
        default=0.5,
        help="client polling interval of the throughput jobs, s (0.5, as the CLI and page do)",
    )
    parser.add_argument(
        "--latency-poll", type=float, default=0.1, help="polling interval of the latency job, s"
    )
    parser.add_argument(
        "--host-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an app setting for devhost's processes (e.g. PIXELPIPE_IMAGING_THREADS=1)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep devhost's data directory")
    return parser.parse_args(argv)


def _median_cpu(samples: list[dict[str, float]]) -> dict[str, float]:
    roles = sorted({role for sample in samples for role in sample})
    return {
        role: round(statistics.median(sample.get(role, 0.0) for sample in samples), 2)
        for role in roles
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)
    reps = args.latency_reps or (1 if args.quick else 3)
    started = time.perf_counter()
    images = make_images()
    ideal: Ideal | None = None
    host: Devhost | None = None
    found: dict[str, list[Any]] = {
        key: []
        for key in (
            "a_wall",
            "b_wall",
            "b_client_wall",
            "a_latency",
            "b_latency",
            "b_client_latency",
            "b_durations",
            "a_cpu",
            "b_cpu",
        )
    }

    def roles() -> dict[int, tuple[str, str]]:
        known: dict[int, tuple[str, str]] = {}
        if ideal is not None:
            for pid in getattr(ideal.pool, "_processes", None) or {}:
                known[pid] = ("pool", "pool")
        process = host.host if host is not None else None
        if process is not None and process.process is not None:
            known[process.process.pid] = ("host", "workers")
        if process is not None and process.azurite.process is not None:
            known[process.azurite.process.pid] = ("azurite", "azurite")
        return known

    meter = CpuMeter(roles)

    def a_throughput(round_: int) -> None:
        assert ideal is not None
        meter.start()
        result = ideal.run_jobs(args.jobs, "big", "big", len(BIG_OPS))
        cpu = meter.stop()
        found["a_wall"].append(result["wall_s"])
        found["a_cpu"].append(cpu)
        emit(
            {
                "bench": "pipeline",
                "case": "throughput",
                "way": "a",
                "round": round_,
                "jobs": args.jobs,
                "ops": len(BIG_OPS),
                "wall_s": round(result["wall_s"], 3),
                "p50_s": round(percentile(result["durations"], 50), 3),
                "cpu_s": cpu,
            }
        )
        log(f"[a] round {round_}: {args.jobs} jobs in {result['wall_s']:.2f}s  cpu {cpu}")

    def b_throughput(round_: int) -> None:
        assert host is not None
        host.settle()
        meter.start()
        run = host.measure(args.jobs, images["big"], BIG_OPS, args.poll)
        cpu = meter.stop()
        found["b_wall"].append(run.wall_s)
        found["b_client_wall"].append(run.client_wall_s)
        found["b_durations"].extend(run.durations)
        found["b_cpu"].append(cpu)
        emit(
            {
                "bench": "pipeline",
                "case": "throughput",
                "way": "b",
                "round": round_,
                "jobs": args.jobs,
                "ops": len(BIG_OPS),
                "wall_s": round(run.wall_s, 3),
                "client_wall_s": round(run.client_wall_s, 3),
                "p50_s": round(percentile(run.durations, 50), 3),
                "p95_s": round(percentile(run.durations, 95), 3),
                "submit_p50_s": round(percentile(run.submit_s, 50), 3),
                "submit_max_s": round(max(run.submit_s), 3),
                "polls": run.polls,
                "cpu_s": cpu,
            }
        )
        log(f"[b] round {round_}: {args.jobs} jobs in {run.wall_s:.2f}s  cpu {cpu}")

    def a_latency(round_: int, rep: int) -> None:
        assert ideal is not None
        result = ideal.run_jobs(1, "small", "small", len(SMALL_OPS))
        found["a_latency"].append(result["wall_s"])
        emit(
            {
                "bench": "pipeline",
                "case": "latency",
                "way": "a",
                "round": round_,
                "rep": rep,
                "ops": len(SMALL_OPS),
                "latency_s": round(result["wall_s"], 4),
            }
        )

    def b_latency(round_: int, rep: int) -> None:
        assert host is not None
        host.settle()
        meter.start()
        run = host.measure(1, images["small"], SMALL_OPS, args.latency_poll)
        cpu = meter.stop()
        found["b_latency"].append(run.wall_s)
        found["b_client_latency"].append(run.client_wall_s)
        emit(
            {
                "bench": "pipeline",
                "case": "latency",
                "way": "b",
                "round": round_,
                "rep": rep,
                "ops": len(SMALL_OPS),
                "latency_s": round(run.wall_s, 3),
                "client_latency_s": round(run.client_wall_s, 3),
                "submit_s": round(run.submit_s[0], 3),
                "job": run.ids[0],
                "cpu_s": cpu,
            }
        )
        log(f"[b] latency {run.wall_s:.2f}s (client saw it at {run.client_wall_s:.2f}s)")

    with interrupts_as_exit():
        try:
            ideal = Ideal(images)
            ideal.warm()
            env = dict(item.split("=", 1) for item in args.host_env)
            host = Devhost(workers=args.workers, env=env).start()
            log(f"[b] devhost up on {host.url} ({host.workers} workers), logs in {host.data}")
            warm = [host.run_job(images["small"], BIG_OPS + SMALL_OPS, 0.1) for _ in range(2)]
            log(f"[b] warm ({', '.join(w['status'] for w in warm)})")
            for round_ in range(rounds):
                pair = [a_throughput, b_throughput]
                for measure in pair if round_ % 2 == 0 else pair[::-1]:
                    measure(round_)
                for rep in range(reps):
                    pair_l = [a_latency, b_latency]
                    for measure_l in pair_l if (round_ + rep) % 2 == 0 else pair_l[::-1]:
                        measure_l(round_, rep)
        finally:
            if ideal is not None:
                ideal.close()
            if host is not None:
                host.stop()
                if args.keep_logs:
                    log(f"[b] devhost stopped; its log: {host.log_path}")
                else:
                    shutil.rmtree(host.data, ignore_errors=True)

    a_wall, b_wall = statistics.median(found["a_wall"]), statistics.median(found["b_wall"])
    a_lat, b_lat = statistics.median(found["a_latency"]), statistics.median(found["b_latency"])
    efficiency, overhead = a_wall / b_wall, b_lat / a_lat
    a_cpu, b_cpu = _median_cpu(found["a_cpu"]), _median_cpu(found["b_cpu"])
    b_total = sum(v for k, v in b_cpu.items() if k in ("host", "workers", "azurite", "client"))
    noisy = a_cpu.get("other", 0.0) > 0.1 * a_cpu.get("pool", 0.0) or b_cpu.get(
        "other", 0.0
    ) > 0.1 * max(b_total, 0.01)
    if noisy:
        log(
            "[bench] WARNING: other processes used a lot of CPU during the measurements "
            f"(other: a {a_cpu.get('other')} s, b {b_cpu.get('other')} s); wall-time figures "
            "are distorted, cpu_efficiency much less so"
        )
    emit(
        {
            "bench": "pipeline",
            "summary": True,
            "efficiency": round(efficiency, 3),
            "latency_overhead": round(overhead, 2),
            "p50_s": round(percentile(found["b_durations"], 50), 3),
            "p95_s": round(percentile(found["b_durations"], 95), 3),
            "a_wall_s": round(a_wall, 3),
            "b_wall_s": round(b_wall, 3),
            "b_client_wall_s": round(statistics.median(found["b_client_wall"]), 3),
            "a_latency_s": round(a_lat, 4),
            "b_latency_s": round(b_lat, 3),
            "b_client_latency_s": round(statistics.median(found["b_client_latency"]), 3),
            "cpu_efficiency": round(a_cpu.get("pool", 0.0) / b_total, 3) if b_total else None,
            "a_cpu_s": a_cpu,
            "b_cpu_s": b_cpu,
            "rounds": rounds,
            "latency_samples": len(found["b_latency"]),
            "jobs": args.jobs,
            "workers": args.workers,
            "poll_s": args.poll,
            "host_env": args.host_env,
            "noisy": noisy,
            "goals_met": {
                "efficiency>=0.8": efficiency >= 0.8,
                "latency_overhead<=2.0": overhead <= 2.0,
            },
        }
    )
    log(f"[bench] done in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        log("[bench] interrupted; devhost and the pool were stopped")
        sys.exit(130)
