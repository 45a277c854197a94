"""The callback signature (services/callbacks/signing.py) and the endpoints' settings rules."""

import pytest
from pydantic import ValidationError

from config.settings import Settings
from services.callbacks.signing import sign, verify

SECRET = "s" * 32


def test_signature_verifies_within_the_window_only() -> None:
    header = sign(SECRET, b'{"a":1}', 1000)
    assert header.startswith("t=1000,v1=")
    assert verify(SECRET, b'{"a":1}', header, now=1000 + 300)
    assert not verify(SECRET, b'{"a":1}', header, now=1000 + 301)  # a replay after the window
    assert not verify(SECRET, b'{"a":2}', header, now=1000)  # another body
    assert not verify("t" * 32, b'{"a":1}', header, now=1000)  # another secret
    forged = header.replace("t=1000", "t=1200")  # a fresher time on the old mac
    assert not verify(SECRET, b'{"a":1}', forged, now=1200)
    assert not verify(SECRET, b"{}", "v1=abc", now=0)


def test_one_endpoint_decides_each_before_event() -> None:
    endpoint = {"url": "https://hooks.example", "secret": SECRET, "events": ["before_send", "after_send"]}
    Settings(callbacks={"endpoints": [{"name": "a", **endpoint}]})
    with pytest.raises(ValidationError, match="more than one endpoint takes before_send"):
        Settings(callbacks={"endpoints": [{"name": "a", **endpoint}, {"name": "b", **endpoint}]})
    with pytest.raises(ValidationError, match="two endpoints have one name"):
        Settings(callbacks={"endpoints": [{"name": "a", **endpoint, "events": ["after_send"]},
                                          {"name": "a", **endpoint, "events": ["user"]}]})
