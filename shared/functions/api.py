"""The HTTP API (API.md). Each route parses the request, calls `JobService`, and answers.

GET    /api/health                          anonymous
GET    /api/operations                      anonymous: catalogue, presets, formats, limits
POST   /api/jobs                            submit (multipart `file` + `spec`, or raw body)
GET    /api/jobs                            the caller's jobs, newest first, paged
GET    /api/jobs/{id}                       one job, with fresh SAS links
DELETE /api/jobs/{id}                       delete record, source and outputs
GET    /api/jobs/{id}/outputs/{ref}         302 to a fresh SAS link of one output
POST   /api/uploads                         register a job, get a write-only upload URL
"""

from __future__ import annotations

import azure.functions as func

import shared
from shared import web
from shared.errors import InvalidRequest, NotFound
from shared.functions.http import Call, handle, json_response, parse_multipart, read_body
from shared.imaging import PRESETS, catalogue
from shared.imaging.registry import writable_formats
from shared.jobs.service import TERMINAL, JobService, Submission
from shared.jobs.spec import JobSpec
from shared.openapi import openapi
from shared.storage.sas import content_disposition

__all__ = ["bp"]

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return handle(
        req,
        lambda call: json_response(200, {"status": "ok", "version": shared.__version__}),
        auth=False,
    )


def _operations(call: Call) -> func.HttpResponse:
    s = call.rt.settings
    return json_response(
        200,
        {
            "operations": catalogue(),
            "presets": {name: preset["operations"] for name, preset in PRESETS.items()},
            "formats": list(writable_formats()),
            "inputFormats": list(s.input_formats),
            "limits": {
                "maxUploadBytes": s.max_upload_bytes,
                "maxBlobBytes": s.max_blob_bytes,
                "maxFramePixels": s.max_frame_pixels,
                "maxTotalPixels": s.max_total_pixels,
                "maxFrames": s.max_frames,
                "maxDimension": s.max_dimension,
                "maxOperations": s.max_operations,
                "maxChainSteps": s.max_chain_steps,
            },
        },
        {"Cache-Control": "public, max-age=300"},
    )


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda call: json_response(200, openapi()), auth=False)


@bp.route(route="operations", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def operations(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, _operations, auth=False)


def _spec(call: Call, text: str | bytes | None, preset: str | None) -> JobSpec:
    service = JobService(call.rt)
    return service.spec({"preset": preset}) if preset and not text else service.spec(text=text)


def _submit(call: Call) -> func.HttpResponse:
    req = call.req
    body = read_body(req, call.rt.settings.max_upload_bytes + 64 * 1024)
    content_type = req.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        parts = parse_multipart(content_type, body)
        if "file" not in parts:
            raise InvalidRequest(
                "The multipart body needs a `file` part with the image.", path="file"
            )
        spec_part = parts.get("spec")
        spec = _spec(call, spec_part.data if spec_part else None, req.params.get("preset"))
        data, filename = parts["file"].data, parts["file"].filename
    else:
        spec = _spec(call, req.params.get("spec"), req.params.get("preset"))
        data, filename = body, req.params.get("filename")
    key = req.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 200:
        raise InvalidRequest("Idempotency-Key must be 1-200 characters.", path="Idempotency-Key")
    job, _ = JobService(call.rt).submit(
        call.caller, Submission(data, spec, filename or "image", key)
    )
    location = f"/api/jobs/{job.id}"
    return json_response(
        202,
        {
            "id": job.id,
            "status": "queued" if not job.status.terminal else job.status.value,
            "statusUrl": location,
        },
        {"Location": location},
    )


def _list(call: Call) -> func.HttpResponse:
    limit = call.req.params.get("limit")
    if limit is not None and not limit.isdigit():
        raise InvalidRequest("limit must be a positive integer.", path="limit")
    return json_response(
        200,
        JobService(call.rt).list(
            call.caller, call.req.params.get("cursor"), int(limit) if limit else None
        ),
    )


@bp.route(route="jobs", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def jobs(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, _submit if req.method.upper() == "POST" else _list)


def _job(call: Call) -> func.HttpResponse:
    job_id = call.req.route_params.get("id", "")
    service = JobService(call.rt)
    if call.req.method.upper() == "DELETE":
        service.delete(call.caller, job_id)
        return json_response(204)
    document = service.get(call.caller, job_id)
    # Not finished yet: tell pollers when it is worth asking again.
    headers = {} if document["status"] in TERMINAL else {"Retry-After": "1"}
    return json_response(200, document, headers)


@bp.route(route="jobs/{id}", methods=["GET", "DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
def job_item(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, _job)


def _output(call: Call) -> func.HttpResponse:
    access = JobService(call.rt).output(
        call.caller, call.req.route_params.get("id", ""), call.req.route_params.get("ref", "")
    )
    if access.redirect is not None:
        return func.HttpResponse(status_code=302, headers={"Location": access.redirect})
    return func.HttpResponse(
        access.content,
        status_code=200,
        mimetype=access.content_type,
        headers={
            "Content-Disposition": content_disposition(access.filename),
            "Cache-Control": "private, no-store",
        },
    )


@bp.route(route="jobs/{id}/outputs/{ref}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def job_output(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, _output)


def _upload(call: Call) -> func.HttpResponse:
    result = JobService(call.rt).create_upload(call.caller, call.json_body())
    return json_response(201, result, {"Location": result["statusUrl"]})


@bp.route(route="uploads", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def uploads(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, _upload)


def _page(call: Call, name: str) -> func.HttpResponse:
    found = web.asset(name)
    if found is None:
        raise NotFound("No such page.")
    content, content_type = found
    blob = call.rt.clients.endpoints.blob
    origin = "/".join(blob.split("/", 3)[:3])
    return func.HttpResponse(
        content,
        status_code=200,
        mimetype=content_type,
        headers={
            "Content-Security-Policy": web.content_security_policy(origin),
            "Cache-Control": "no-cache",
            "Referrer-Policy": "no-referrer",
        },
    )


@bp.route(route="ui", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def ui(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda call: _page(call, "index.html"), auth=False)


@bp.route(route="ui/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def ui_asset(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, lambda call: _page(call, req.route_params.get("name", "")), auth=False)
