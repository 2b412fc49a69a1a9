"""`python -m devhost run|demo|token`: pixelpipe on one machine, no Azure, no Core Tools.

run     Azurite (reused if already listening, else started with its data in
        .data/azurite) + the local Functions host on http://127.0.0.1:$PORT (7071) with
        --workers worker processes (default: one per core). Ctrl-C stops what it started.
demo    one job on a generated 12 MP photo through a running host (or one it starts and
        stops itself); prints the result links and saves the outputs under .data/demo/.
token   print a dev access token (the local issuer's key is in .data/devhost/).
worker  (internal) one worker process, started by `run`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from devhost.azurite import ACCOUNT, Azurite, free_ports
from devhost.config import DATA, PLATFORM_BODY_LIMIT, ROOT, HostConfig, app_settings
from devhost.issuer import TokenIssuer
from devhost.wakeup import BELLS_ENV, Doorbell, QueueProxy

log = logging.getLogger("devhost")

AZURITE_PORTS = (10000, 10001, 10002)
STORAGE_ENV = "DEVHOST_STORAGE"  # devhost's own connection: Azurite itself, no proxy
PROXY_PORT_ENV = "DEVHOST_QUEUE_PROXY_PORT"


def _own_storage() -> str:
    return os.environ.get(STORAGE_ENV) or os.environ["AzureWebJobsStorage"]


def issuer_for(base_url: str) -> TokenIssuer:
    return TokenIssuer.persistent(DATA / "devhost" / "issuer.json", f"{base_url}/.devhost")


def _configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("DEVHOST_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(process)d %(name)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("azure", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def _azurite(args: argparse.Namespace) -> tuple[Azurite, bool]:
    blob, queue, table = args.azurite_ports
    location = None if args.in_memory else DATA / "azurite"
    server = Azurite(blob, queue, table, location=location)
    if server.running:
        log.info("reusing the storage emulator already listening on %s-%s", blob, table)
        return server, False
    log.info(
        "starting Azurite on 127.0.0.1:%s-%s (%s)",
        blob,
        table,
        "in memory" if location is None else f"data in {location}",
    )
    return server.start(), True


def _banner(base_url: str, workers: int, storage: Azurite, has_ui: bool) -> str:
    lines = [
        "",
        "pixelpipe is running locally",
        f"  API        {base_url}/api   (anonymous: /api/health, /api/operations)",
    ]
    if has_ui:
        lines.append(f"  Web page   {base_url}/api/ui")
    lines += [
        f"  Storage    Azurite on 127.0.0.1:{storage.blob_port}-{storage.table_port}",
        f"  Workers    {workers} worker process(es) + this one",
        "",
        "Try it:",
        f"  TOKEN=$(curl -s -X POST {base_url}/.devhost/token | python3 -c "
        "'import sys,json; print(json.load(sys.stdin)[\"access_token\"])')",
        f'  curl -s -H "Authorization: Bearer $TOKEN" --data-binary @photo.jpg '
        f'"{base_url}/api/jobs?preset=web"',
        f'  curl -s -H "Authorization: Bearer $TOKEN" {base_url}/api/jobs/<id>',
        "",
        "Ctrl-C stops everything this started.",
        "",
    ]
    return "\n".join(lines)


async def _serve(args: argparse.Namespace, storage: Azurite, base_url: str) -> None:
    from aiohttp import web

    from devhost.functions import FunctionIndex
    from devhost.server import DevHost
    from shared.runtime import runtime

    config = HostConfig.load()
    index = FunctionIndex.load(route_prefix=config.route_prefix)
    doorbell = Doorbell.from_env()
    proxy = None
    if doorbell is not None:
        doorbell.open()
        if os.environ.get(PROXY_PORT_ENV):
            target = f"http://127.0.0.1:{storage.queue_port}"
            proxy = await QueueProxy(target, doorbell).start(int(os.environ[PROXY_PORT_ENV]))
    await asyncio.to_thread(runtime)  # storage resources and the first key, once
    host = DevHost(
        index,
        config,
        _own_storage(),
        base_url,
        issuer_for(base_url),
        body_limit=int(os.environ.get("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", PLATFORM_BODY_LIMIT)),
        doorbell=doorbell,
    )
    stop = asyncio.Event()
    _stop_on_signals(stop)
    runner = web.AppRunner(host.web_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    workers = Workers(args.workers, base_url)
    host.start_durable_loop(stop, orchestrations=True, activities=args.workers == 0)
    host.start_blob_watchers(stop)
    if args.workers == 0:
        host.start_queue_listeners(stop)
    workers.start()
    has_ui = any(r.template.endswith("/ui") for r in index.http_routes())
    print(_banner(base_url, args.workers, storage, has_ui), flush=True)
    supervisor = asyncio.create_task(workers.supervise(stop))
    await stop.wait()
    log.info("stopping")
    workers.stop()
    await supervisor
    await host.wait()
    await runner.cleanup()
    if proxy is not None:
        await proxy.stop()
    if doorbell is not None:
        doorbell.close()


class Workers:
    """The worker processes; a worker that dies is replaced, as the platform would."""

    def __init__(self, count: int, base_url: str) -> None:
        self.count = count
        self.base_url = base_url
        self.processes: list[subprocess.Popen[bytes]] = []

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - this interpreter, this package
            [sys.executable, "-m", "devhost", "worker", "--base-url", self.base_url],
            cwd=ROOT,
            env=os.environ.copy(),
        )

    def start(self) -> None:
        self.processes = [self._spawn() for _ in range(self.count)]

    async def supervise(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for i, process in enumerate(self.processes):
                if process.poll() is not None:
                    log.warning(
                        "worker %s exited (%s); starting a new one", process.pid, process.returncode
                    )
                    self.processes[i] = self._spawn()
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except TimeoutError:
                pass

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


async def _worker(base_url: str) -> None:
    from devhost.functions import FunctionIndex
    from devhost.server import DevHost

    config = HostConfig.load()
    index = FunctionIndex.load(route_prefix=config.route_prefix)
    doorbell = Doorbell.from_env()
    if doorbell is not None:
        doorbell.open()
    host = DevHost(index, config, _own_storage(), base_url, doorbell=doorbell)
    stop = asyncio.Event()
    _stop_on_signals(stop)
    host.start_queue_listeners(stop)
    host.start_durable_loop(stop, orchestrations=False, activities=True)
    await stop.wait()
    await host.wait()
    if doorbell is not None:
        doorbell.close()


def cmd_run(args: argparse.Namespace) -> int:
    storage, started = _azurite(args)
    base_url = f"http://127.0.0.1:{args.port}"
    bells = DATA / "devhost" / f"bells-{args.port}"  # this run's doorbell registry
    try:
        settings = app_settings(
            base_url=base_url, storage=storage.connection_string, isolated=args.isolated
        )
        own = settings.get("AzureWebJobsStorage", "")
        if own == storage.connection_string and storage.scheme == "http":
            # The app's queue writes go through devhost's proxy, which wakes the listeners
            # (devhost.wakeup); devhost itself talks to Azurite directly.
            proxy_port = free_ports(1)[0]
            settings["AzureWebJobsStorage"] = own.replace(
                storage.endpoint(storage.queue_port),
                f"http://127.0.0.1:{proxy_port}/{ACCOUNT}",
            )
            settings[PROXY_PORT_ENV] = str(proxy_port)
        shutil.rmtree(bells, ignore_errors=True)  # registrations of an earlier run
        os.environ.update({**settings, STORAGE_ENV: own, BELLS_ENV: str(bells)})
        asyncio.run(_serve(args, storage, base_url))
    finally:
        shutil.rmtree(bells, ignore_errors=True)
        if started:
            storage.stop()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    asyncio.run(_worker(args.base_url))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    scopes = args.scope or None
    print(issuer_for(f"http://127.0.0.1:{args.port}").token(args.sub, scopes=scopes))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from devhost.demo import run_demo

    return run_demo(args.port, out_dir=Path(args.out))


def main(argv: list[str] | None = None) -> int:
    _configure_logging()
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    default_port = int(os.environ.get("PORT", "7071"))
    workers = max(1, len(os.sched_getaffinity(0)))

    run = sub.add_parser("run", help="run pixelpipe locally")
    run.add_argument("--port", type=int, default=default_port)
    run.add_argument(
        "--workers",
        type=int,
        default=workers,
        help="worker processes (default: one per core; 0 = all in one process)",
    )
    run.add_argument(
        "--azurite-ports",
        type=int,
        nargs=3,
        default=AZURITE_PORTS,
        metavar=("BLOB", "QUEUE", "TABLE"),
    )
    run.add_argument(
        "--in-memory", action="store_true", help="start Azurite without persistence (tests)"
    )
    run.add_argument("--isolated", action="store_true", help="ignore local.settings.json (tests)")
    run.set_defaults(func=cmd_run)

    worker = sub.add_parser("worker", help=argparse.SUPPRESS)
    worker.add_argument("--base-url", required=True)
    worker.set_defaults(func=cmd_worker)

    demo = sub.add_parser("demo", help="run one job and print the result links")
    demo.add_argument("--port", type=int, default=default_port)
    demo.add_argument("--out", default=str(DATA / "demo"))
    demo.set_defaults(func=cmd_demo)

    token = sub.add_parser("token", help="print a dev access token")
    token.add_argument("--sub", default="dev-user")
    token.add_argument("--scope", action="append")
    token.add_argument("--port", type=int, default=default_port)
    token.set_defaults(func=cmd_token)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
