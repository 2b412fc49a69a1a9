"""The OpenAPI 3.1 description of the HTTP API, built from the code's own declarations.

The operation schemas come from the operation registry (one declaration per operation), the
limits from the settings' defaults, the error codes from the error tree. Served at
`GET /api/openapi.json`; `python -m shared.docs` writes it to docs/openapi.json.
"""

from __future__ import annotations

from typing import Any

import shared
from shared.errors import PixelpipeError
from shared.imaging import PRESETS, REGISTRY
from shared.imaging.registry import OUTPUT_PARAMS, writable_formats

__all__ = ["openapi"]


def _error_codes() -> list[str]:
    """Every public error code; the modules defining PixelpipeError subclasses outside
    shared.errors are imported so that the list is the same in every process."""
    import shared.security.kek
    import shared.security.secrets  # noqa: F401

    codes: set[str] = set()
    todo: list[type[PixelpipeError]] = [PixelpipeError]
    while todo:
        cls = todo.pop()
        codes.add(cls.code)
        todo.extend(cls.__subclasses__())
    return sorted(codes)


def _step_schema(top: bool) -> dict[str, Any]:
    variants = []
    for op in REGISTRY.values():
        properties: dict[str, Any] = {"op": {"const": op.name}}
        properties.update({p.name: p.schema() for p in op.all_params()})
        if top:
            properties["name"] = {
                "type": "string",
                "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                "description": "Names the output (default: the op name, made unique).",
            }
            properties["then"] = {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Step"},
                "maxItems": 9,
            }
        required = ["op", *[p.name for p in op.params if p.required]]
        variants.append(
            {
                "type": "object",
                "title": op.name,
                "description": op.description,
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            }
        )
    return {"oneOf": variants}


def _response(description: str, schema: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema:
        out["content"] = {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
        }
    return out


ERRORS = {
    code: _response(text, "Error")
    for code, text in {
        "400": "Bad request (EMPTY_BODY, INVALID_SPEC, TOO_MANY_OPERATIONS, INVALID_REQUEST)",
        "401": "UNAUTHENTICATED (with WWW-Authenticate)",
        "403": "FORBIDDEN: the token lacks Images.Process",
        "404": "NOT_FOUND (also for other principals' jobs)",
        "413": "PAYLOAD_TOO_LARGE",
        "415": "UNSUPPORTED_MEDIA_TYPE (sniffed from the bytes)",
        "422": "IMAGE_TOO_LARGE or IMAGE_CORRUPT",
        "429": "RATE_LIMITED (with Retry-After)",
        "503": "UNAVAILABLE (with Retry-After)",
    }.items()
}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: ERRORS[code] for code in codes}


def openapi() -> dict[str, Any]:
    job_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    }
    secured = [{"entra": ["Images.Process"]}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pixelpipe",
            "version": shared.__version__,
            "description": "Serverless image processing: submit an image and operations, "
            "get short-lived links to the results.",
        },
        "servers": [{"url": "http://127.0.0.1:7071", "description": "the local host"}],
        "security": secured,
        "paths": {
            "/api/health": {
                "get": {
                    "security": [],
                    "summary": "Liveness",
                    "responses": {"200": _response("ok", "Health")},
                }
            },
            "/api/operations": {
                "get": {
                    "security": [],
                    "summary": "Operations, presets, formats and limits",
                    "responses": {"200": _response("The catalogue", "Catalogue")},
                }
            },
            "/api/jobs": {
                "post": {
                    "summary": "Submit an image and the operations to run on it",
                    "parameters": [
                        {
                            "name": "preset",
                            "in": "query",
                            "schema": {"type": "string", "enum": list(PRESETS)},
                        },
                        {
                            "name": "spec",
                            "in": "query",
                            "description": "URL-encoded JSON spec",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "schema": {"type": "string", "maxLength": 200},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["file"],
                                    "properties": {
                                        "file": {"type": "string", "format": "binary"},
                                        "spec": {"$ref": "#/components/schemas/Spec"},
                                    },
                                }
                            },
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    "responses": {
                        "202": _response("Accepted", "Accepted"),
                        **_errors("400", "401", "403", "413", "415", "422", "503"),
                    },
                },
                "get": {
                    "summary": "Your jobs, newest first",
                    "parameters": [
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                        },
                    ],
                    "responses": {
                        "200": _response("A page", "JobPage"),
                        **_errors("400", "401", "403"),
                    },
                },
            },
            "/api/jobs/{id}": {
                "get": {
                    "summary": "A job, with fresh links to its outputs",
                    "parameters": [job_id],
                    "responses": {
                        "200": _response("The job", "Job"),
                        **_errors("401", "403", "404"),
                    },
                },
                "delete": {
                    "summary": "Delete a job, its source and outputs",
                    "parameters": [job_id],
                    "responses": {
                        "204": {"description": "Deleted (or never existed)"},
                        **_errors("401", "403"),
                    },
                },
            },
            "/api/jobs/{id}/outputs/{ref}": {
                "get": {
                    "summary": "Redirect to a fresh link to one output",
                    "parameters": [
                        job_id,
                        {
                            "name": "ref",
                            "in": "path",
                            "required": True,
                            "description": "index or name",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "302": {"description": "Location: the link"},
                        **_errors("401", "403", "404"),
                    },
                }
            },
            "/api/uploads": {
                "post": {
                    "summary": "Register a job for a large file; get a write-only upload URL",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/UploadRequest"}
                            }
                        },
                    },
                    "responses": {
                        "201": _response("Registered", "Upload"),
                        **_errors("400", "401", "403", "413"),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "entra": {
                    "type": "oauth2",
                    "description": "Entra ID access token (RS256); the scope or "
                    "app role Images.Process. Locally: POST /.devhost/token.",
                    "flows": {
                        "authorizationCode": {
                            "authorizationUrl": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
                            "tokenUrl": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
                            "scopes": {"Images.Process": "Process images"},
                        }
                    },
                }
            },
            "schemas": {
                "Step": _step_schema(top=False),
                "Operation": _step_schema(top=True),
                "Spec": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "operations": {
                            "type": "array",
                            "maxItems": 20,
                            "items": {"$ref": "#/components/schemas/Operation"},
                        },
                        "preset": {"type": "string", "enum": list(PRESETS)},
                        "webhook": {
                            "type": "object",
                            "required": ["url"],
                            "properties": {"url": {"type": "string", "format": "uri"}},
                        },
                    },
                },
                "UploadRequest": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Spec"},
                        {
                            "type": "object",
                            "required": ["filename", "bytes"],
                            "properties": {
                                "filename": {"type": "string"},
                                "bytes": {"type": "integer", "minimum": 1},
                            },
                        },
                    ]
                },
                "Upload": {
                    "type": "object",
                    "properties": {
                        "jobId": {"type": "string"},
                        "uploadUrl": {"type": "string"},
                        "expiresAt": {"type": "string", "format": "date-time"},
                        "statusUrl": {"type": "string"},
                        "maxBytes": {"type": "integer"},
                    },
                },
                "Accepted": {
                    "type": "object",
                    "required": ["id", "status", "statusUrl"],
                    "properties": {
                        "id": {"type": "string"},
                        "status": {"type": "string"},
                        "statusUrl": {"type": "string"},
                    },
                },
                "Output": {
                    "type": "object",
                    "properties": {
                        "url": {"type": "string"},
                        "expiresAt": {"type": "string"},
                        "format": {"type": "string", "enum": list(writable_formats())},
                        "contentType": {"type": "string"},
                        "width": {"type": "integer"},
                        "height": {"type": "integer"},
                        "bytes": {"type": "integer"},
                    },
                },
                "Job": {
                    "type": "object",
                    "required": ["id", "status", "progress", "operations"],
                    "properties": {
                        "id": {"type": "string"},
                        "status": {"enum": ["queued", "running", "succeeded", "partial", "failed"]},
                        "createdAt": {"type": "string"},
                        "completedAt": {"type": ["string", "null"]},
                        "source": {"type": ["object", "null"]},
                        "progress": {
                            "type": "object",
                            "properties": {
                                "done": {"type": "integer"},
                                "total": {"type": "integer"},
                            },
                        },
                        "operations": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "index": {"type": "integer"},
                                    "name": {"type": "string"},
                                    "op": {"type": "string"},
                                    "status": {"enum": ["queued", "succeeded", "failed"]},
                                    "output": {"$ref": "#/components/schemas/Output"},
                                    "error": {"$ref": "#/components/schemas/ErrorBody"},
                                },
                            },
                        },
                    },
                },
                "JobPage": {
                    "type": "object",
                    "properties": {
                        "jobs": {"type": "array", "items": {"type": "object"}},
                        "next": {"type": ["string", "null"]},
                    },
                },
                "Health": {
                    "type": "object",
                    "properties": {"status": {"const": "ok"}, "version": {"type": "string"}},
                },
                "Catalogue": {
                    "type": "object",
                    "properties": {
                        "operations": {"type": "array"},
                        "presets": {"type": "object"},
                        "formats": {"type": "array"},
                        "limits": {"type": "object"},
                    },
                },
                "ErrorBody": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"enum": _error_codes()},
                        "message": {"type": "string"},
                        "requestId": {"type": "string"},
                        "path": {"type": "string"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"$ref": "#/components/schemas/ErrorBody"}},
                },
            },
        },
        "x-output-options": [p.schema() | {"name": p.name} for p in OUTPUT_PARAMS],
    }
