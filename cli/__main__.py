"""pixelpipe's command-line client.

    python -m cli ops                          the operations and their parameters
    python -m cli submit photo.jpg --preset web --wait --out results/
    python -m cli submit photo.jpg --op '{"op": "resize", "width": 800}' --op '{"op": "grayscale"}'
    python -m cli upload huge.jpg --preset web --wait        (files over the HTTP cap)
    python -m cli status <job> | list | download <job> --out dir | delete <job>
    python -m cli login | token

Where: PIXELPIPE_URL (default http://127.0.0.1:7071, the local host).
Who: against the local host, a dev token from its issuer; against Azure, Entra ID through
MSAL: a device-code sign-in (PIXELPIPE_CLIENT_ID: a public client registered for the API,
PIXELPIPE_TENANT_ID, PIXELPIPE_API_SCOPE e.g. api://pixelpipe/Images.Process), cached in
~/.cache/pixelpipe/msal.json; or, for daemons, client credentials (PIXELPIPE_CLIENT_SECRET,
which must come from the environment or a secret store, never a file in the repo).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

TERMINAL = ("succeeded", "partial", "failed")
CACHE = Path.home() / ".cache" / "pixelpipe" / "msal.json"


class CliError(Exception):
    pass


def base_url() -> str:
    return os.environ.get("PIXELPIPE_URL", "http://127.0.0.1:7071").rstrip("/")


def _is_local(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


def _msal_token(interactive: bool) -> str:
    import msal

    client_id = os.environ.get("PIXELPIPE_CLIENT_ID")
    tenant = os.environ.get("PIXELPIPE_TENANT_ID")
    scope = os.environ.get("PIXELPIPE_API_SCOPE")
    if not (client_id and tenant and scope):
        raise CliError(
            "Set PIXELPIPE_CLIENT_ID, PIXELPIPE_TENANT_ID and PIXELPIPE_API_SCOPE "
            "to sign in to a deployed pixelpipe (see docs/deployment.md)."
        )
    authority = f"https://login.microsoftonline.com/{tenant}"
    secret = os.environ.get("PIXELPIPE_CLIENT_SECRET")
    if secret:  # a daemon: the app role Images.Process, scope <api>/.default
        app = msal.ConfidentialClientApplication(
            client_id, client_credential=secret, authority=authority
        )
        api = scope.rsplit("/", 1)[0]
        result = app.acquire_token_for_client(scopes=[f"{api}/.default"])
    else:
        cache = msal.SerializableTokenCache()
        if CACHE.exists():
            cache.deserialize(CACHE.read_text())
        app = msal.PublicClientApplication(client_id, authority=authority, token_cache=cache)
        accounts = app.get_accounts()
        result = app.acquire_token_silent([scope], account=accounts[0]) if accounts else None
        if not result:
            if not interactive:
                raise CliError("Not signed in: run `python -m cli login`.")
            flow = app.initiate_device_flow(scopes=[scope])
            if "user_code" not in flow:
                raise CliError(f"Could not start the sign-in: {flow.get('error_description')}")
            print(flow["message"], file=sys.stderr)
            result = app.acquire_token_by_device_flow(flow)
        if cache.has_state_changed:
            CACHE.parent.mkdir(parents=True, exist_ok=True)
            CACHE.write_text(cache.serialize())
            CACHE.chmod(0o600)
    if "access_token" not in result:
        raise CliError(f"Sign-in failed: {result.get('error_description') or result}")
    return str(result["access_token"])


def get_token(interactive: bool = False) -> str:
    if os.environ.get("PIXELPIPE_TOKEN"):
        return os.environ["PIXELPIPE_TOKEN"]
    url = base_url()
    if _is_local(url):
        reply = requests.post(
            f"{url}/.devhost/token",
            json={"sub": os.environ.get("PIXELPIPE_DEV_USER", "cli-user")},
            timeout=10,
        )
        if reply.ok:
            return str(reply.json()["access_token"])
    return _msal_token(interactive)


class Client:
    def __init__(self, token: str) -> None:
        self.url = base_url()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self.session.request(method, f"{self.url}/api{path}", timeout=120, **kwargs)
        if reply.status_code >= 400:
            try:
                error = reply.json()["error"]
                raise CliError(f"{reply.status_code} {error['code']}: {error['message']}")
            except (ValueError, KeyError):
                raise CliError(f"{reply.status_code}: {reply.text[:300]}") from None
        return reply.json() if reply.content else None

    def wait(self, job_id: str, *, timeout: float = 600, quiet: bool = False) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.call("GET", f"/jobs/{job_id}")
            if not quiet:
                progress = job["progress"]
                print(
                    f"\r{job['status']} {progress['done']}/{progress['total']}",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
            if job["status"] in TERMINAL:
                if not quiet:
                    print(file=sys.stderr)
                return job
            if time.monotonic() > deadline:
                raise CliError(f"job {job_id} did not finish within {timeout:.0f} s")
            time.sleep(0.5)

    def download(self, job: dict[str, Any], out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        saved = []
        for op in job["operations"]:
            if op.get("output"):
                path = out / f"{op['name']}.{op['output']['format']}"
                data = requests.get(op["output"]["url"], timeout=120)
                data.raise_for_status()
                path.write_bytes(data.content)
                saved.append(path)
        return saved


def _spec(args: argparse.Namespace) -> dict[str, Any] | None:
    spec: dict[str, Any] = {}
    if args.spec:
        spec = json.loads(Path(args.spec).read_text())
    if args.op:
        spec.setdefault("operations", []).extend(json.loads(op) for op in args.op)
    if args.preset:
        spec["preset"] = args.preset
    if args.webhook:
        spec["webhook"] = {"url": args.webhook}
    return spec or None


def _finish(client: Client, job_id: str, args: argparse.Namespace) -> int:
    if not (args.wait or args.out):
        print(json.dumps({"id": job_id, "statusUrl": f"/api/jobs/{job_id}"}))
        return 0
    job = client.wait(job_id)
    print(json.dumps(job, indent=2))
    if args.out:
        for path in client.download(job, Path(args.out)):
            print(f"saved {path}", file=sys.stderr)
    return 0 if job["status"] == "succeeded" else 2


def cmd_submit(args: argparse.Namespace) -> int:
    client = Client(get_token())
    path = Path(args.file)
    spec = _spec(args)
    with path.open("rb") as handle:
        files: dict[str, Any] = {"file": (path.name, handle, "application/octet-stream")}
        if spec:
            files["spec"] = (None, json.dumps(spec), "application/json")
        headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
        job = client.call("POST", "/jobs", files=files, headers=headers)
    return _finish(client, job["id"], args)


def cmd_upload(args: argparse.Namespace) -> int:
    client = Client(get_token())
    path = Path(args.file)
    body = {"filename": path.name, "bytes": path.stat().st_size, **(_spec(args) or {})}
    upload = client.call("POST", "/uploads", json=body)
    with path.open("rb") as handle:
        put = requests.put(
            upload["uploadUrl"], data=handle, timeout=600, headers={"x-ms-blob-type": "BlockBlob"}
        )
    if put.status_code >= 300:
        raise CliError(f"upload failed: {put.status_code} {put.text[:200]}")
    return _finish(client, upload["jobId"], args)


def cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(Client(get_token()).call("GET", f"/jobs/{args.job}"), indent=2))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    params = {"cursor": args.cursor} if args.cursor else {}
    print(json.dumps(Client(get_token()).call("GET", "/jobs", params=params), indent=2))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    client = Client(get_token())
    for path in client.download(client.call("GET", f"/jobs/{args.job}"), Path(args.out)):
        print(path)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    Client(get_token()).call("DELETE", f"/jobs/{args.job}")
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    from shared.docs import operations_markdown

    print(operations_markdown())
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    get_token(interactive=True)
    print("signed in", file=sys.stderr)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    print(get_token(interactive=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cli",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_text in (
        ("submit", cmd_submit, "process an image"),
        ("upload", cmd_upload, "process a large image (upload URL)"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("file")
        cmd.add_argument("--preset")
        cmd.add_argument("--op", action="append", help="one operation as JSON (repeatable)")
        cmd.add_argument("--spec", help="a JSON file with the whole spec")
        cmd.add_argument("--webhook")
        cmd.add_argument("--idempotency-key")
        cmd.add_argument("--wait", action="store_true")
        cmd.add_argument("--out", help="download the outputs here (implies --wait)")
        cmd.set_defaults(func=func)
    for name, func, help_text in (
        ("status", cmd_status, "one job"),
        ("delete", cmd_delete, "delete a job and its files"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("job")
        cmd.set_defaults(func=func)
    download = sub.add_parser("download", help="save a job's outputs")
    download.add_argument("job")
    download.add_argument("--out", default=".")
    download.set_defaults(func=cmd_download)
    listing = sub.add_parser("list", help="your jobs, newest first")
    listing.add_argument("--cursor")
    listing.set_defaults(func=cmd_list)
    sub.add_parser("ops", help="operations and parameters").set_defaults(func=cmd_ops)
    sub.add_parser("login", help="sign in (Entra ID)").set_defaults(func=cmd_login)
    sub.add_parser("token", help="print an access token").set_defaults(func=cmd_token)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, requests.RequestException, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
