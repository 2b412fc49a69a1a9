"""The API.md contract over real HTTP, against the local host as `make run` starts it."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import subprocess
import sys

import pytest
import requests
from PIL import Image

from tests.e2e.conftest import ROOT, wait_until
from tests.fixtures import images
from tests.support.loopback import LoopbackServer

pytestmark = [pytest.mark.azurite, pytest.mark.slow]


def test_anonymous_routes_and_page(local_host):
    assert requests.get(f"{local_host.url}/api/health", timeout=5).json()["status"] == "ok"
    catalogue = requests.get(f"{local_host.url}/api/operations", timeout=5).json()
    assert "resize" in {o["op"] for o in catalogue["operations"]}
    assert requests.get(f"{local_host.url}/api/openapi.json", timeout=5).json()["openapi"]
    page = requests.get(f"{local_host.url}/api/ui", timeout=5)
    assert (
        page.status_code == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
    )
    assert (
        requests.get(f"{local_host.url}/", timeout=5, allow_redirects=False).headers["Location"]
        == "/api/ui"
    )


def test_dev_tokens(local_host):
    reply = requests.post(f"{local_host.url}/.devhost/token", json={}, timeout=5).json()
    assert reply["token_type"] == "Bearer" and reply["expires_in"] == 3600
    no_scope = local_host.token("nobody", scopes=["User.Read"])
    denied = requests.get(
        f"{local_host.url}/api/jobs", timeout=5, headers={"Authorization": f"Bearer {no_scope}"}
    )
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "FORBIDDEN"
    anonymous = requests.get(f"{local_host.url}/api/jobs", timeout=5)
    assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["WWW-Authenticate"]


def test_a_job_end_to_end(local_host):
    spec = {
        "operations": [
            {"op": "resize", "width": 320, "format": "webp"},
            {"name": "hero", "op": "crop", "aspect": "16:9", "then": [{"op": "sharpen"}]},
            {"op": "watermark", "text": "pixelpipe", "format": "png"},
        ]
    }
    reply = local_host.submit(images.jpeg(1200, 900), spec)
    assert reply.status_code == 202 and reply.headers["Location"] == reply.json()["statusUrl"]
    job = local_host.wait(reply.json()["id"])
    assert job["status"] == "succeeded" and job["progress"] == {"done": 3, "total": 3}
    for op, (fmt, size) in zip(
        job["operations"],
        [("webp", (320, 240)), ("jpeg", (1200, 675)), ("png", (1200, 900))],
        strict=True,
    ):
        output = op["output"]
        got = requests.get(output["url"], timeout=10)
        assert got.status_code == 200 and got.headers["Content-Type"] == f"image/{fmt}"
        assert got.headers["Content-Disposition"].startswith("attachment;")
        assert (
            Image.open(io.BytesIO(got.content)).size == size == (output["width"], output["height"])
        )
    redirect = requests.get(
        f"{local_host.url}/api/jobs/{job['id']}/outputs/hero",
        headers=local_host.headers(),
        timeout=10,
        allow_redirects=False,
    )
    assert redirect.status_code == 302
    assert requests.get(redirect.headers["Location"], timeout=10).status_code == 200
    listed = requests.get(
        f"{local_host.url}/api/jobs", headers=local_host.headers(), timeout=10
    ).json()
    assert job["id"] in [j["id"] for j in listed["jobs"]]
    other = requests.get(
        f"{local_host.url}/api/jobs/{job['id']}",
        timeout=10,
        headers=local_host.headers("someone-else"),
    )
    assert other.status_code == 404
    deleted = requests.delete(
        f"{local_host.url}/api/jobs/{job['id']}", headers=local_host.headers(), timeout=10
    )
    assert deleted.status_code == 204
    assert requests.get(job["operations"][0]["output"]["url"], timeout=10).status_code == 404


def test_raw_body_with_preset_and_idempotency(local_host):
    headers = {**local_host.headers(), "Idempotency-Key": "e2e-once", "Content-Type": "image/png"}
    first = requests.post(
        f"{local_host.url}/api/jobs",
        params={"preset": "avatar"},
        data=images.png(),
        headers=headers,
        timeout=30,
    )
    again = requests.post(
        f"{local_host.url}/api/jobs",
        params={"preset": "avatar"},
        data=images.png(),
        headers=headers,
        timeout=30,
    )
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    job = local_host.wait(first.json()["id"])
    assert [o["name"] for o in job["operations"]] == ["avatar-512", "avatar-128"]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "EMPTY_BODY"),
        (images.svg_with_script(), 415, "UNSUPPORTED_MEDIA_TYPE"),
        (images.html_page(), 415, "UNSUPPORTED_MEDIA_TYPE"),
        (images.truncated_jpeg(), 422, "IMAGE_CORRUPT"),
        (images.png_header_only(20000, 20000), 422, "IMAGE_TOO_LARGE"),
    ],
    ids=["empty", "svg", "html", "truncated", "bomb"],
)
def test_bad_uploads_over_http(local_host, data, status, code):
    reply = requests.post(
        f"{local_host.url}/api/jobs",
        data=data,
        timeout=30,
        headers={**local_host.headers("refused-user"), "Content-Type": "image/png"},
    )
    assert (reply.status_code, reply.json()["error"]["code"]) == (status, code)
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert (
        requests.get(
            f"{local_host.url}/api/jobs", headers=local_host.headers("refused-user"), timeout=10
        ).json()["jobs"]
        == []
    )


def test_body_over_the_platform_cap_is_refused_before_it_is_read(local_host):
    import http.client

    cap = 52_428_800 + 1_048_576
    # A declared length over the cap is answered at once: nothing of the body is waited for.
    conn = http.client.HTTPConnection("127.0.0.1", local_host.port, timeout=10)
    conn.putrequest("POST", "/api/jobs")
    conn.putheader("Authorization", local_host.headers()["Authorization"])
    conn.putheader("Content-Length", str(cap + 1))
    conn.endheaders()
    conn.send(b"\xff\xd8\xff")
    declared = conn.getresponse()
    assert declared.status == 413
    conn.close()

    def chunks():
        for _ in range(cap // (1 << 20) + 2):
            yield b"\0" * (1 << 20)

    streamed = requests.post(
        f"{local_host.url}/api/jobs", data=chunks(), timeout=60, headers=local_host.headers()
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_upload_url_flow(local_host):
    created = requests.post(
        f"{local_host.url}/api/uploads",
        headers=local_host.headers(),
        json={"filename": "big.jpg", "bytes": 50_000, "preset": "thumbnails"},
        timeout=10,
    )
    assert created.status_code == 201
    body = created.json()
    put = requests.put(
        body["uploadUrl"],
        data=images.jpeg(800, 600),
        timeout=30,
        headers={"x-ms-blob-type": "BlockBlob"},
    )
    assert put.status_code == 201
    job = local_host.wait(body["jobId"])
    assert job["status"] == "succeeded" and job["progress"]["total"] == 4


def test_blob_drop(local_host):
    rt = local_host.runtime()
    rt.clients.container("inbox").upload_blob(
        "e2e/sunset.jpg", images.jpeg(640, 480), metadata={"pixelpipe_preset": "avatar"}
    )

    def finished():
        names = [b.name for b in rt.clients.container("outbox").list_blobs(name_starts_with="e2e/")]
        return names if "e2e/sunset/manifest.json" in names else None

    names = wait_until(finished)
    assert names == [
        "e2e/sunset/avatar-128.webp",
        "e2e/sunset/avatar-512.webp",
        "e2e/sunset/manifest.json",
    ]
    manifest = json.loads(rt.plain_blobs.get("outbox", "e2e/sunset/manifest.json"))
    assert manifest["status"] == "succeeded"
    rt.clients.container("inbox").upload_blob("e2e/notes.txt", b"not an image at all")
    record = wait_until(
        lambda: next(
            (
                b.name
                for b in rt.clients.container("quarantine").list_blobs()
                if b.name.endswith("notes.txt.error.json")
            ),
            None,
        )
    )
    assert json.loads(rt.private_blobs.get("quarantine", record))["error"]["code"] == (
        "UNSUPPORTED_MEDIA_TYPE"
    )


def test_webhook_delivery_with_a_valid_signature(local_host):
    secret = (local_host.data / "devhost" / "webhook.secret").read_text().strip()
    with LoopbackServer(lambda req: (204, {}, b"")) as receiver:
        spec = {"operations": [{"op": "flip"}], "webhook": {"url": f"{receiver.url}/done"}}
        job_id = local_host.submit(images.jpeg(), spec).json()["id"]
        (request,) = receiver.wait_for(1)
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-pixelpipe-signature"] == f"sha256={expected}"
    assert json.loads(request.body)["id"] == job_id
    assert local_host.wait(job_id)["webhook"]["status"] == "delivered"


def test_the_cli_against_the_local_host(local_host, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(images.jpeg(800, 600))
    env = {**os.environ, "PIXELPIPE_URL": local_host.url}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "submit",
            str(photo),
            "--preset",
            "avatar",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["status"] == "succeeded"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "avatar-128.webp",
        "avatar-512.webp",
    ]
