"""One table tells every application error on every wire (ack, JSON-RPC, admin HTTP)."""

from __future__ import annotations

from bridge.router import APP_CODES
from imgate.admin import _HTTP_STATUS
from services.errors import WIRE, ErrorCode, ImError, RateLimited, Unavailable


def test_every_error_code_is_in_the_one_table_and_both_wires_use_it() -> None:
    assert set(WIRE) == set(ErrorCode)
    assert APP_CODES == {code: wire.rpc for code, wire in WIRE.items()}
    assert _HTTP_STATUS == {code: wire.http for code, wire in WIRE.items()}
    assert (_HTTP_STATUS[ErrorCode.UNAVAILABLE], APP_CODES[ErrorCode.UNAVAILABLE]) == (503, 503)


def test_unavailable_and_rate_limited_are_exception_types() -> None:
    assert isinstance(Unavailable("search is down"), ImError) and Unavailable("x").code is ErrorCode.UNAVAILABLE
    assert RateLimited("slow down").code is ErrorCode.RATE_LIMITED
