"""The one error tree of pixelpipe.

Every failure a user can cause, and every failure a job can end with, is one of these. Each
class knows its HTTP status, its stable public code and whether retrying can help; the message
is always safe to show (it never carries paths, stack traces or library internals).

    PixelpipeError                      500  INTERNAL
    ├── ClientError                     4xx  (permanent: retrying the same input fails again)
    │   ├── EmptyBody                   400  EMPTY_BODY
    │   ├── InvalidRequest              400  INVALID_REQUEST
    │   ├── InvalidSpec                 400  INVALID_SPEC          (.path names the bad field)
    │   ├── TooManyOperations           400  TOO_MANY_OPERATIONS
    │   ├── Unauthenticated             401  UNAUTHENTICATED
    │   ├── Forbidden                   403  FORBIDDEN
    │   ├── NotFound                    404  NOT_FOUND
    │   ├── Conflict                    409  CONFLICT
    │   ├── PayloadTooLarge             413  PAYLOAD_TOO_LARGE
    │   ├── UnsupportedMediaType        415  UNSUPPORTED_MEDIA_TYPE
    │   ├── ImageTooLarge               422  IMAGE_TOO_LARGE
    │   ├── ImageCorrupt                422  IMAGE_CORRUPT
    │   └── OperationFailed             422  OPERATION_FAILED      (params the image cannot satisfy)
    │       └── TargetSizeUnreachable   422  TARGET_SIZE_UNREACHABLE
    ├── RateLimited                     429  RATE_LIMITED          (retryable, Retry-After)
    └── ServiceError                    5xx
        ├── Unavailable                 503  UNAVAILABLE           (retryable, Retry-After)
        ├── OperationTimeout            504  TIMEOUT
        ├── ProcessingFailed            500  PROCESSING_FAILED     (kept failing: poison queue)
        ├── OutputConflict              500  OUTPUT_CONFLICT       (a foreign blob holds the name)
        └── DecryptionFailed            500  DECRYPTION_FAILED     (.kid names the key needed)

`retryable` is what the queue worker looks at: a retryable error is raised again so the
message comes back; anything else completes the operation as failed at once.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ClientError",
    "Conflict",
    "DecryptionFailed",
    "EmptyBody",
    "Forbidden",
    "ImageCorrupt",
    "ImageTooLarge",
    "InvalidRequest",
    "InvalidSpec",
    "NotFound",
    "OperationFailed",
    "OperationTimeout",
    "OutputConflict",
    "PayloadTooLarge",
    "PixelpipeError",
    "ProcessingFailed",
    "RateLimited",
    "ServiceError",
    "TargetSizeUnreachable",
    "TooManyOperations",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
]


class PixelpipeError(Exception):
    """Base of every pixelpipe error: an HTTP status, a stable code and a safe message."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL"
    default_message: ClassVar[str] = "An internal error occurred."
    retryable: ClassVar[bool] = False

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details = {k: v for k, v in details.items() if v is not None}
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The public shape: `{"code": ..., "message": ..., **details}`."""
        return {"code": self.code, "message": self.message, **self.details}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"


class ClientError(PixelpipeError):
    """The request or the image is at fault; the same input will fail the same way."""

    status = 400
    code = "INVALID_REQUEST"
    default_message = "The request is not valid."


class EmptyBody(ClientError):
    code = "EMPTY_BODY"
    default_message = "The request has no image in it."


class InvalidRequest(ClientError):
    code = "INVALID_REQUEST"


class InvalidSpec(ClientError):
    """A spec field is wrong; `path` names it the way a client wrote it (`operations[2].width`)."""

    code = "INVALID_SPEC"
    default_message = "The operations spec is not valid."

    def __init__(self, message: str | None = None, *, path: str | None = None, **details: Any):
        self.path = path
        text = f"{path}: {message}" if path and message else message
        super().__init__(text, path=path, **details)


class TooManyOperations(ClientError):
    code = "TOO_MANY_OPERATIONS"
    default_message = "The spec asks for more operations than allowed."


class Unauthenticated(ClientError):
    status = 401
    code = "UNAUTHENTICATED"
    default_message = "A valid bearer token is required."


class Forbidden(ClientError):
    status = 403
    code = "FORBIDDEN"
    default_message = "The token does not grant permission for this."


class NotFound(ClientError):
    status = 404
    code = "NOT_FOUND"
    default_message = "Not found."


class Conflict(ClientError):
    status = 409
    code = "CONFLICT"
    default_message = "The request conflicts with the current state."


class PayloadTooLarge(ClientError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "The upload is larger than allowed."


class UnsupportedMediaType(ClientError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "The content is not an accepted image format."


class ImageTooLarge(ClientError):
    status = 422
    code = "IMAGE_TOO_LARGE"
    default_message = "The image is larger than allowed."


class ImageCorrupt(ClientError):
    status = 422
    code = "IMAGE_CORRUPT"
    default_message = "The image is truncated or cannot be decoded."


class OperationFailed(ClientError):
    """The operation's parameters cannot be satisfied by this particular image."""

    status = 422
    code = "OPERATION_FAILED"
    default_message = "The operation cannot be applied to this image."


class TargetSizeUnreachable(OperationFailed):
    code = "TARGET_SIZE_UNREACHABLE"
    default_message = "The output cannot be made as small as requested."


class RateLimited(PixelpipeError):
    status = 429
    code = "RATE_LIMITED"
    default_message = "Too many requests; retry later."
    retryable = True

    def __init__(self, message: str | None = None, *, retry_after: int = 5, **details: Any):
        self.retry_after = retry_after
        super().__init__(message, **details)


class ServiceError(PixelpipeError):
    """pixelpipe or a service it depends on failed; the input may be fine."""


class Unavailable(ServiceError):
    status = 503
    code = "UNAVAILABLE"
    default_message = "The service is temporarily unavailable; retry later."
    retryable = True

    def __init__(self, message: str | None = None, *, retry_after: int = 5, **details: Any):
        self.retry_after = retry_after
        super().__init__(message, **details)


class OperationTimeout(ServiceError):
    status = 504
    code = "TIMEOUT"
    default_message = "The operation did not finish within its time budget."


class ProcessingFailed(ServiceError):
    code = "PROCESSING_FAILED"
    default_message = "The operation failed repeatedly and was abandoned."


class OutputConflict(ServiceError):
    code = "OUTPUT_CONFLICT"
    default_message = "Another file already holds this output's name."


class DecryptionFailed(ServiceError):
    code = "DECRYPTION_FAILED"
    default_message = "Stored data could not be decrypted."

    def __init__(self, message: str | None = None, *, kid: str | None = None, **details: Any):
        self.kid = kid
        super().__init__(message, kid=kid, **details)
