"""A local S3-compatible server for the attachment tests: moto in server mode (a stand-in for a
third-party cloud, spoken to over real HTTP; what it does not check is listed in
tests/services/test_s3_store.py). Fixtures: ``endpoint`` (one server per module), ``admin`` (a
plain botocore client, for what imgate does not do: make buckets, look behind the store) and
``bucket`` (a fresh bucket per test). Import them into a test module with
``from tests.moto_s3 import admin_fixture, bucket_fixture, endpoint_fixture  # noqa: F401``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import botocore.session  # type: ignore[import-untyped]
import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
KEY_ID = "AKIAIMGATETEST"
SECRET = "imgate-test-secret"


@pytest.fixture(name="endpoint", scope="module")
def endpoint_fixture() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(name="admin", scope="module")
def admin_fixture(endpoint: str) -> Iterator[Any]:
    """A plain botocore client for what the store does not do (make buckets, look behind it)."""
    client = botocore.session.Session().create_client(
        "s3", region_name=REGION, endpoint_url=endpoint, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET
    )
    yield client
    client.close()


@pytest.fixture(name="bucket")
def bucket_fixture(admin: Any) -> str:
    name = f"imgate-test-{uuid.uuid4().hex[:12]}"
    admin.create_bucket(Bucket=name)
    return name
