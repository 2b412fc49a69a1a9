"""The HTTP contract of API.md, through the real HTTP functions, on a real Azurite."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from shared.imaging import PRESETS, REGISTRY
from tests.fixtures import images
from tests.functions.helpers import call, inventory, is_empty, multipart

pytestmark = pytest.mark.azurite


@pytest.fixture
def alice(issuer):
    return issuer.token("alice")


@pytest.fixture
def bob(issuer):
    return issuer.token("bob")


def submit(token, data=None, **kwargs):
    return call("jobs", "POST", body=images.jpeg() if data is None else data, token=token, **kwargs)


# -- anonymous routes --------------------------------------------------------------------------


def test_health_and_operations_are_anonymous(rt):
    health = call("health")
    assert health.status == 200 and health.json()["status"] == "ok"
    ops = call("operations")
    assert ops.status == 200
    body = ops.json()
    assert {o["op"] for o in body["operations"]} == set(REGISTRY)
    assert set(body["presets"]) == set(PRESETS)
    assert {"jpeg", "png", "webp", "gif", "avif"} <= set(body["formats"])
    assert body["limits"]["maxOperations"] == 20


def test_every_response_carries_safety_headers(rt, alice):
    for reply in (call("health"), submit(alice), call("jobs", token="nope")):
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert len(reply.headers["X-Request-Id"]) >= 8


# -- submitting ----------------------------------------------------------------------------


def test_raw_body_with_preset(rt, alice):
    reply = submit(alice, params={"preset": "thumbnails"})
    assert reply.status == 202
    body = reply.json()
    assert body["status"] == "queued" and reply.headers["Location"] == body["statusUrl"]
    job = call("job", token=alice, route_params={"id": body["id"]}).json()
    assert [o["name"] for o in job["operations"]] == [
        "thumb-64",
        "thumb-128",
        "thumb-256",
        "thumb-512",
    ]
    assert job["source"] == {
        "format": "jpeg",
        "width": 640,
        "height": 480,
        "frames": 1,
        "bytes": len(images.jpeg()),
    }
    state = inventory(rt)
    assert state["blobs"]["originals"] == [f"{body['id']}/source"]
    assert state["queues"]["jobs"] == 1
    assert len(state["rows"]["jobs"]) == 5


def test_multipart_with_spec(rt, alice):
    spec = {"operations": [{"op": "grayscale"}, {"op": "resize", "width": 100, "format": "webp"}]}
    body, ctype = multipart(
        {
            "file": ("photo.jpg", images.jpeg(), "image/jpeg"),
            "spec": (None, json.dumps(spec).encode(), "application/json"),
        }
    )
    reply = call("jobs", "POST", body=body, token=alice, headers={"Content-Type": ctype})
    assert reply.status == 202, reply.body
    job = call("job", token=alice, route_params={"id": reply.json()["id"]}).json()
    assert [o["name"] for o in job["operations"]] == ["grayscale", "resize"]


def test_spec_in_query(rt, alice):
    spec = json.dumps({"operations": [{"op": "flip"}]})
    reply = submit(alice, params={"spec": spec})
    assert reply.status == 202
    job = call("job", token=alice, route_params={"id": reply.json()["id"]}).json()
    assert job["operations"][0]["op"] == "flip"


def test_no_spec_uses_the_default_preset(rt, alice):
    reply = submit(alice)
    job = call("job", token=alice, route_params={"id": reply.json()["id"]}).json()
    assert [o["name"] for o in job["operations"]] == [
        o["name"] for o in PRESETS["web"]["operations"]
    ]


def test_gif_declared_as_jpeg_is_taken_as_gif(rt, alice):
    reply = submit(alice, images.animated_gif(), headers={"Content-Type": "image/jpeg"})
    job = call("job", token=alice, route_params={"id": reply.json()["id"]}).json()
    assert job["source"]["format"] == "gif" and job["source"]["frames"] == 5


def test_idempotency_key_returns_the_same_job(rt, alice, bob):
    first = submit(alice, headers={"Idempotency-Key": "order-42"})
    again = submit(alice, headers={"Idempotency-Key": "order-42"})
    other = submit(bob, headers={"Idempotency-Key": "order-42"})
    assert first.json()["id"] == again.json()["id"] != other.json()["id"]
    state = inventory(rt)
    assert len(state["blobs"]["originals"]) == 2
    assert len([r for r in state["rows"]["jobs"] if r[1] == "job"]) == 2


# -- rejected uploads leave nothing behind -------------------------------------------------------


REJECTIONS = [
    ("empty body", b"", {}, {}, 400, "EMPTY_BODY"),
    (
        "svg",
        images.svg_with_script(),
        {"Content-Type": "image/svg+xml"},
        {},
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    (
        "svg as png",
        images.svg_with_script(),
        {"Content-Type": "image/png"},
        {},
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    (
        "html as jpeg",
        images.html_page(),
        {"Content-Type": "image/jpeg"},
        {},
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    *[
        (name, data, {"Content-Type": "image/jpeg"}, {}, 415, "UNSUPPORTED_MEDIA_TYPE")
        for name, data in sorted(images.refused_formats().items())
    ],
    ("truncated", images.truncated_jpeg(), {}, {}, 422, "IMAGE_CORRUPT"),
    ("pixel bomb", images.png_header_only(20000, 20000), {}, {}, 422, "IMAGE_TOO_LARGE"),
    (
        "100 MP (Pillow only warns)",
        images.png_header_only(10000, 10000),
        {},
        {},
        422,
        "IMAGE_TOO_LARGE",
    ),
    ("zlib bomb", images.png_zlib_bomb(), {}, {}, 422, "IMAGE_TOO_LARGE"),
    ("100000x1", images.png_header_only(100000, 1), {}, {}, 422, "IMAGE_TOO_LARGE"),
    ("zero width", images.png_zero_size(), {}, {}, 422, "IMAGE_CORRUPT"),
    ("50 MB zTXt", images.png_huge_ztxt(50), {}, {}, 422, "IMAGE_TOO_LARGE"),
    ("70 MB of text chunks", images.png_many_text_chunks(70), {}, {}, 422, "IMAGE_TOO_LARGE"),
    ("bad CRC", images.png_bad_crc(), {}, {}, 422, "IMAGE_CORRUPT"),
    ("garbage stream", images.png_garbage_stream(), {}, {}, 422, "IMAGE_CORRUPT"),
    ("frames x pixels", images.gif_big_canvas(), {}, {}, 422, "IMAGE_TOO_LARGE"),
    ("frame bomb", images.tiny_frames_gif(300), {}, {}, 422, "IMAGE_TOO_LARGE"),
    ("bad spec json", None, {}, {"spec": "{oops"}, 400, "INVALID_SPEC"),
    (
        "unknown op",
        None,
        {},
        {"spec": json.dumps({"operations": [{"op": "explode"}]})},
        400,
        "INVALID_SPEC",
    ),
    (
        "too many ops",
        None,
        {},
        {"spec": json.dumps({"operations": [{"op": "flip"}] * 1000})},
        400,
        "TOO_MANY_OPERATIONS",
    ),
    ("unknown preset", None, {}, {"preset": "nope"}, 400, "INVALID_SPEC"),
    ("bad idempotency key", None, {"Idempotency-Key": "x" * 300}, {}, 400, "INVALID_REQUEST"),
]


@pytest.mark.parametrize(
    ("case", "data", "headers", "params", "status", "code"),
    REJECTIONS,
    ids=[r[0] for r in REJECTIONS],
)
def test_rejected_upload_leaves_nothing_behind(
    rt, alice, case, data, headers, params, status, code
):
    before = inventory(rt)
    assert is_empty(before)
    reply = submit(alice, data, headers=headers, params=params)
    assert (reply.status, reply.code) == (status, code), reply.body
    error = reply.json()["error"]
    assert error["message"] and error["requestId"] == reply.headers["X-Request-Id"]
    assert "Traceback" not in reply.body.decode()
    assert inventory(rt) == before


def test_spec_errors_name_their_path(rt, alice):
    spec = json.dumps({"operations": [{"op": "resize", "width": 10}, {"op": "resize", "width": 0}]})
    reply = submit(alice, params={"spec": spec})
    assert reply.status == 400 and reply.json()["error"]["path"] == "operations[1].width"


def test_body_over_the_cap_is_413_before_reading(rt, alice):
    cap = rt.settings.max_upload_bytes
    reply = submit(
        alice, b"\xff\xd8\xff" + b"\0" * 16, headers={"Content-Length": str(cap + 10_000_000)}
    )
    assert (reply.status, reply.code) == (413, "PAYLOAD_TOO_LARGE")
    big = submit(alice, b"\xff\xd8\xff" + b"\0" * (cap + 100_000))
    assert (big.status, big.code) == (413, "PAYLOAD_TOO_LARGE")
    assert is_empty(inventory(rt))


def test_multipart_without_file_part(rt, alice):
    body, ctype = multipart({"spec": (None, b"{}", None)})
    reply = call("jobs", "POST", body=body, token=alice, headers={"Content-Type": ctype})
    assert (reply.status, reply.code) == (400, "INVALID_REQUEST")


def test_private_webhook_refused_when_not_allowed(rt, alice, monkeypatch):
    import dataclasses

    strict = dataclasses.replace(rt.settings, webhook_allow_private=False)
    monkeypatch.setattr(rt, "settings", strict)
    for url in (
        "http://example.org/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.8/h",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://localhost/hook",
    ):
        spec = json.dumps({"operations": [{"op": "flip"}], "webhook": {"url": url}})
        reply = submit(alice, params={"spec": spec})
        assert (reply.status, reply.code) == (400, "INVALID_SPEC"), url
        assert reply.json()["error"]["path"] == "webhook.url"
    assert is_empty(inventory(rt))


# -- authentication and ownership ----------------------------------------------------------------


def test_missing_or_bad_token_is_401_with_challenge(rt):
    for token in (None, "not-a-jwt"):
        reply = call("jobs", token=token)
        assert (reply.status, reply.code) == (401, "UNAUTHENTICATED")
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_without_permission_is_403(rt, issuer):
    reply = call("jobs", token=issuer.token("carol", scopes=["User.Read"]))
    assert (reply.status, reply.code) == (403, "FORBIDDEN")
    assert "insufficient_scope" in reply.headers["WWW-Authenticate"]


def test_app_role_grants_access(rt, issuer):
    assert call("jobs", token=issuer.token("daemon", roles=["Images.Process"])).status == 200


def test_another_principals_job_is_404(rt, alice, bob):
    job_id = submit(alice).json()["id"]
    for route, method, params in (
        ("job", "GET", {"id": job_id}),
        ("output", "GET", {"id": job_id, "ref": "0"}),
    ):
        reply = call(route, method, token=bob, route_params=params)
        assert (reply.status, reply.code) == (404, "NOT_FOUND")
    assert call("job", "DELETE", token=bob, route_params={"id": job_id}).status == 204
    assert call("job", token=alice, route_params={"id": job_id}).status == 200  # untouched
    assert call("jobs", token=bob).json()["jobs"] == []


def test_unknown_and_malformed_ids_are_404(rt, alice):
    for job_id in ("0" * 32, "../../etc/passwd", "x"):
        assert call("job", token=alice, route_params={"id": job_id}).status == 404


# -- listing, outputs, deleting ------------------------------------------------------------------


def test_list_is_newest_first_and_paged(rt, alice):
    ids = [submit(alice, params={"preset": "avatar"}).json()["id"] for _ in range(5)]
    first = call("jobs", token=alice, params={"limit": "2"}).json()
    assert [j["id"] for j in first["jobs"]] == ids[::-1][:2] and first["next"]
    second = call("jobs", token=alice, params={"limit": "2", "cursor": first["next"]}).json()
    third = call("jobs", token=alice, params={"limit": "2", "cursor": second["next"]}).json()
    seen = [j["id"] for page in (first, second, third) for j in page["jobs"]]
    assert seen == ids[::-1] and third["next"] is None
    assert call("jobs", token=alice, params={"cursor": "bad cursor!"}).code == "INVALID_REQUEST"


def test_output_before_it_exists_is_404(rt, alice):
    job_id = submit(alice).json()["id"]
    reply = call("output", token=alice, route_params={"id": job_id, "ref": "large"})
    assert reply.status == 404


def test_delete_removes_everything_and_is_idempotent(rt, alice):
    job_id = submit(alice).json()["id"]
    assert call("job", "DELETE", token=alice, route_params={"id": job_id}).status == 204
    assert call("job", "DELETE", token=alice, route_params={"id": job_id}).status == 204
    assert call("job", token=alice, route_params={"id": job_id}).status == 404
    state = inventory(rt)
    assert not state["blobs"]["originals"] and not state["rows"]["jobs"]
    assert not [r for r in state["rows"]["jobindex"] if r[0].startswith("owner-")]


# -- upload URLs ---------------------------------------------------------------------------------


def test_upload_url_is_write_only_for_one_inbox_blob(rt, alice):
    reply = call(
        "uploads",
        "POST",
        token=alice,
        body=json.dumps(
            {"filename": "../../big photo.jpg", "bytes": 1234, "preset": "avatar"}
        ).encode(),
    )
    assert reply.status == 201, reply.body
    body = reply.json()
    parts = urlsplit(body["uploadUrl"])
    assert parts.path.startswith(f"/devstoreaccount1/inbox/uploads/{body['jobId']}/")
    assert ".." not in parts.path and " " not in parts.path
    sas = parse_qs(parts.query)
    assert sas["sp"] == ["cw"] and "se" in sas and "st" in sas
    put = requests.put(
        body["uploadUrl"], data=images.jpeg(), headers={"x-ms-blob-type": "BlockBlob"}, timeout=10
    )
    assert put.status_code == 201
    assert requests.get(body["uploadUrl"], timeout=10).status_code == 403  # no read
    job = call("job", token=alice, route_params={"id": body["jobId"]}).json()
    assert job["status"] == "queued" and job["awaitingUpload"] is True


@pytest.mark.parametrize(
    "payload",
    [
        {"bytes": 10},
        {"filename": "a.jpg"},
        {"filename": "a.jpg", "bytes": -1},
        {"filename": "a.jpg", "bytes": True},
        [1, 2],
    ],
)
def test_upload_request_validation(rt, alice, payload):
    reply = call("uploads", "POST", token=alice, body=json.dumps(payload).encode())
    assert (reply.status, reply.code) == (400, "INVALID_REQUEST")
    assert is_empty(inventory(rt))


def test_upload_too_big_is_413(rt, alice):
    reply = call(
        "uploads",
        "POST",
        token=alice,
        body=json.dumps({"filename": "a.jpg", "bytes": rt.settings.max_blob_bytes + 1}).encode(),
    )
    assert (reply.status, reply.code) == (413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize(
    "filename",
    [
        "../../etc/passwd.jpg",
        "..\\..\\boot.ini",
        "résumé – été 🌅.jpg",
        "a" * 5000 + ".jpg",
        'quote".jpg\r\nX-Injected: 1',
        "",
    ],
)
def test_hostile_filenames_never_reach_blob_names_or_headers(rt, alice, filename):
    from shared.jobs import processing

    body, ctype = multipart(
        {
            "file": (filename, images.jpeg(), "image/jpeg"),
            "spec": (None, b'{"operations": [{"op": "flip"}]}', None),
        }
    )
    reply = call("jobs", "POST", body=body, token=alice, headers={"Content-Type": ctype})
    assert reply.status == 202
    job_id = reply.json()["id"]
    job, ops = rt.store.get_with_operations(job_id)
    (task,) = processing.dispatch_tasks(rt, job, ops)
    processing.run_operation(rt, task)
    names = inventory(rt)["blobs"]
    assert names["originals"] == [f"{job_id}/source"]
    assert names["results"] == [f"{job_id}/flip.jpg"]  # server-generated names only
    disposition = rt.plain_blobs.properties("results", task.output_blob).content_settings[
        "content_disposition"
    ]
    assert disposition.startswith('attachment; filename="')
    assert "\r" not in disposition and "\n" not in disposition and ".." not in disposition
    ascii_name = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert ascii_name and all(c.isalnum() or c in "._-" for c in ascii_name)
    assert len(disposition) < 1000


def processed(rt, token, data, operations=({"op": "flip"},)):
    """Submit, run every operation, and return (job document, [output bytes])."""
    from shared.jobs import processing

    reply = submit(token, data, params={"spec": json.dumps({"operations": list(operations)})})
    assert reply.status == 202, reply.body
    job, ops = rt.store.get_with_operations(reply.json()["id"])
    for task in processing.dispatch_tasks(rt, job, ops):
        processing.run_operation(rt, task)
    document = call("job", token=token, route_params={"id": job.id}).json()
    outputs = [
        rt.plain_blobs.get(
            "results", f"{job.id}/{o['name']}.{o['output']['format']}".replace(".jpeg", ".jpg")
        )
        for o in document["operations"]
        if o["status"] == "succeeded"
    ]
    return document, outputs


def test_polyglot_trailer_is_absent_from_every_output(rt, alice):
    document, outputs = processed(
        rt, alice, images.jpeg_html_polyglot(), [{"op": "flip"}, {"op": "convert", "format": "png"}]
    )
    assert document["source"]["format"] == "jpeg" and len(outputs) == 2
    for data in outputs:
        assert images.POLYGLOT_MARKER not in data and b"PK\x03\x04" not in data


def test_gps_exif_and_xmp_are_gone_and_orientation_applied(rt, alice):
    import io

    from PIL import Image

    document, (output,) = processed(rt, alice, images.jpeg_with_metadata(6, 400, 300))
    assert (document["source"]["width"], document["source"]["height"]) == (300, 400)
    assert b"PixelCam" not in output and b"xmp-marker" not in output
    image = Image.open(io.BytesIO(output))
    assert not image.getexif() and image.size == (300, 400)


@pytest.mark.parametrize(
    "make",
    [
        images.cmyk_jpeg,
        images.png_16bit_gray,
        images.png_1bit,
        images.png_palette_transparent,
        images.png_la,
    ],
    ids=["cmyk", "16-bit", "1-bit", "palette+alpha", "LA"],
)
def test_unusual_modes_are_processed(rt, alice, make):
    document, outputs = processed(
        rt, alice, make(), [{"op": "resize", "width": 60}, {"op": "sepia", "format": "webp"}]
    )
    assert document["progress"] == {"done": 2, "total": 2} and len(outputs) == 2


def test_request_id_is_in_the_logs_and_no_internals_in_errors(rt, alice, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="pixelpipe.http")
    reply = submit(alice, images.truncated_jpeg(), headers={"X-Request-Id": "trace-12345678"})
    assert reply.headers["X-Request-Id"] == "trace-12345678"
    assert reply.json()["error"]["requestId"] == "trace-12345678"
    assert any("trace-12345678" in r.getMessage() for r in caplog.records)
    text = reply.body.decode()
    for internal in ("Traceback", "PIL", 'File "', "azure.", "/work/"):
        assert internal not in text


def test_submissions_are_rate_limited_per_principal(rt, alice, bob, monkeypatch):
    import dataclasses

    monkeypatch.setattr(rt, "settings", dataclasses.replace(rt.settings, jobs_per_minute=2))
    assert submit(alice).status == 202
    assert submit(alice, headers={"Idempotency-Key": "k"}).status == 202
    assert submit(alice, headers={"Idempotency-Key": "k"}).status == 202  # a replay: free
    assert submit(alice, b"").status == 400  # refused: free
    limited = submit(alice)
    assert (limited.status, limited.code) == (429, "RATE_LIMITED")
    assert 1 <= int(limited.headers["Retry-After"]) <= 61
    assert submit(bob).status == 202  # per principal
    upload = call(
        "uploads", "POST", token=alice, body=json.dumps({"filename": "a.jpg", "bytes": 10}).encode()
    )
    assert upload.status == 429


def test_storage_outage_is_503_with_retry_after(rt, alice, monkeypatch):
    from azure.core.exceptions import HttpResponseError, ServiceRequestError

    def down(*args, **kwargs):
        raise ServiceRequestError("connection refused")

    monkeypatch.setattr(rt.store, "list_for", down)
    reply = call("jobs", token=alice)
    assert (reply.status, reply.code) == (503, "UNAVAILABLE") and reply.headers["Retry-After"]

    def busy(*args, **kwargs):
        error = HttpResponseError("server busy")
        error.status_code = 503
        raise error

    monkeypatch.setattr(rt.store, "list_for", busy)
    assert call("jobs", token=alice).code == "UNAVAILABLE"
