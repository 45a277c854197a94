"""The rooted exception tree of the service layer, translated to the wire at one boundary."""

from __future__ import annotations

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
    INTERNAL = "internal"


class ImError(Exception):
    """An error a client (or operator) caused and should be told about."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
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
