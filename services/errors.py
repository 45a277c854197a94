"""The rooted exception tree of the service layer, translated to the wire at one boundary."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ErrorCode(str, Enum):
    """Application error codes (protocol §3); the bridge maps them to acks and JSON-RPC."""

    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    REFUSED = "refused"  # the operator's before_* callback refused it (docs/callbacks.md); ``reason`` says why
    INTERNAL = "internal"


# JSON-RPC 2.0's own error codes (the router uses the first four for malformed requests).
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603


@dataclass(frozen=True, slots=True)
class WireError:
    """How one ErrorCode is told on each wire: the ``error.code`` of an ack (the ErrorCode's
    value), the JSON-RPC ``error.code``, and the admin API's HTTP status."""

    rpc: int
    http: int


# The one table: every ErrorCode, on every wire (a test checks that none is missing).
WIRE: dict[ErrorCode, WireError] = {
    ErrorCode.BAD_REQUEST: WireError(INVALID_PARAMS, 400),
    ErrorCode.NOT_FOUND: WireError(404, 404),
    ErrorCode.FORBIDDEN: WireError(403, 403),
    ErrorCode.TOO_LARGE: WireError(413, 413),
    ErrorCode.RATE_LIMITED: WireError(429, 429),
    ErrorCode.CONFLICT: WireError(409, 409),
    ErrorCode.UNAVAILABLE: WireError(503, 503),
    ErrorCode.REFUSED: WireError(422, 422),
    ErrorCode.INTERNAL: WireError(INTERNAL_ERROR, 500),
}


class ImError(Exception):
    """An error a client (or operator) caused and should be told about."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, code: ErrorCode | None = None, *, retry_after_ms: int | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_ms = retry_after_ms  # when to try again (rate_limited), told on every wire
        self.reason = reason  # refused: the operator's reason code ([a-z0-9_.-]{1,64}), told on every wire
        if code is not None:
            self.code = code


class BadRequest(ImError):
    code = ErrorCode.BAD_REQUEST


class NotFound(ImError):
    code = ErrorCode.NOT_FOUND


class Forbidden(ImError):
    code = ErrorCode.FORBIDDEN


class Conflict(ImError):
    code = ErrorCode.CONFLICT


class TooLarge(ImError):
    code = ErrorCode.TOO_LARGE


class RateLimited(ImError):
    """Over a per-user limit: nothing was done; ``retry_after_ms`` says when to try again."""

    code = ErrorCode.RATE_LIMITED


class Refused(ImError):
    """The operator's ``before_*`` callback refused the request (or could not be asked, and
    its policy is to refuse): nothing was done; ``reason`` is the operator's code."""

    code = ErrorCode.REFUSED


class Unavailable(ImError):
    """A part the request needs is down for now (e.g. the search engine): try again later."""

    code = ErrorCode.UNAVAILABLE
