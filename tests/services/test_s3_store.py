"""The S3 attachment store (services.attachments.s3) against a local S3 server: moto in server
mode, spoken to over real HTTP by the store's aiobotocore client and by httpx as a client would.

What moto checks of a presigned request, and what it does not (moto 5.2; the tests below pin it,
so a moto upgrade that changes it shows up here):

* it checks nothing of the signature: not the signature itself, not X-Amz-Date/X-Amz-Expires
  (expired URLs work), not the signed headers (another Content-Type, another length, a missing
  x-amz-checksum-sha256 are all accepted);
* it checks no body against x-amz-checksum-sha256; it stores no checksum at all for such a PUT
  (it only keeps one sent with x-amz-sdk-checksum-algorithm, and then keeps the *declared* value,
  unverified);
* it accepts a PUT without Content-Length (chunked);
* it reports a multipart upload's composite SHA-256 without the "-N" suffix or ChecksumType;
* it does honour response-content-type / response-content-disposition on a presigned GET, HEAD's
  404, ChecksumMode=ENABLED, and DeleteObjects (missing keys are no error).

What S3 itself does with these requests is checked offline by ``s3_verdict`` below, a SigV4
presigned-request check written from the AWS documentation (not from botocore), applied to the
requests httpx builds (and, where the test then sends one, sends): S3 refuses an expired URL (AccessDenied, "Request has expired"), a request whose
signed headers differ (SignatureDoesNotMatch)
(https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html), and a body whose
SHA-256 differs from x-amz-checksum-sha256 (BadDigest;
https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity-upload.html: "If the
values don't match, the request is rejected"; SigV4 presigned URLs support the SHA-256 header:
https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest

from services.attachments.s3 import MAX_PRESIGN_SECONDS, S3Store
from services.attachments.store import ObjectInfo, UploadTarget
from tests.moto_s3 import KEY_ID, REGION, SECRET, admin_fixture, bucket_fixture, endpoint_fixture  # noqa: F401

BODY = b"\x89PNG fake image bytes " * 40


@pytest.fixture
async def store(endpoint: str, bucket: str) -> AsyncIterator[S3Store]:
    s3 = await S3Store.create(
        bucket, endpoint_url=endpoint, region=REGION, access_key_id=KEY_ID, secret_access_key=SECRET
    )
    yield s3
    await s3.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def target_for(
    store: S3Store, key: str, body: bytes = BODY, mime: str = "image/png", ttl_ms: int = 600_000
) -> UploadTarget:
    return store.upload_target(key, size=len(body), mime=mime, sha256=sha(body), expires_at_ms=now_ms() + ttl_ms)


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def s3_verdict(request: httpx.Request, secret: str, at: datetime) -> str | None:
    """What AWS S3 answers to this presigned request received at ``at``: None (accepted) or its
    error code. SigV4 query-string authentication as the AWS docs define it (canonical request,
    string to sign, HMAC chain; the payload is UNSIGNED-PAYLOAD), then the flexible checksum."""
    params = query(str(request.url))
    signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if at > signed_at + timedelta(seconds=int(params["X-Amz-Expires"])):
        return "AccessDenied"  # "Request has expired"
    signed_headers = params["X-Amz-SignedHeaders"]
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(parse_qsl(request.url.query.decode(), keep_blank_values=True))
        if k != "X-Amz-Signature"
    )
    canonical_headers = "".join(f"{h}:{request.headers.get(h, '').strip()}\n" for h in signed_headers.split(";"))
    canonical_request = "\n".join(
        [
            request.method,
            request.url.raw_path.split(b"?", 1)[0].decode(),
            canonical_query,
            canonical_headers,
            signed_headers,
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = params["X-Amz-Credential"].split("/", 1)[1]
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", params["X-Amz-Date"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(
        hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest(), params["X-Amz-Signature"]
    ):
        return "SignatureDoesNotMatch"
    declared = request.headers.get("x-amz-checksum-sha256")
    if declared is not None and declared != base64.b64encode(hashlib.sha256(request.content).digest()).decode():
        return "BadDigest"
    return None


async def test_upload_then_stat_gives_size_and_sha256(store: S3Store, http: httpx.AsyncClient) -> None:
    target = target_for(store, "a/1")
    assert target.method == "PUT"
    assert target.headers == {
        "Content-Type": "image/png",
        "x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(BODY).digest()).decode(),
    }
    assert await store.stat("a/1") is None
    response = await http.put(target.url, content=BODY, headers=target.headers)
    assert response.status_code == 200, response.text
    assert await store.stat("a/1") == ObjectInfo(size=len(BODY), sha256=sha(BODY))


async def test_the_signature_covers_type_length_and_checksum(store: S3Store, http: httpx.AsyncClient) -> None:
    """What AWS S3 refuses, checked on the requests httpx builds (moto refuses none of them:
    test_what_moto_does_not_check)."""
    target = target_for(store, "a/2")
    assert query(target.url)["X-Amz-SignedHeaders"] == "content-length;content-type;host;x-amz-checksum-sha256"
    at = datetime.now(UTC)

    def verdict(content: bytes, **headers: str) -> str | None:
        request = http.build_request("PUT", target.url, content=content, headers={**target.headers, **headers})
        return s3_verdict(request, SECRET, at)

    assert verdict(BODY) is None
    assert s3_verdict(http.build_request("PUT", target.url, content=BODY, headers=target.headers), "other", at) == (
        "SignatureDoesNotMatch"
    )
    other = bytes(reversed(BODY))
    assert len(other) == len(BODY)
    assert verdict(other) == "BadDigest"
    assert verdict(BODY, **{"Content-Type": "text/html"}) == "SignatureDoesNotMatch"
    assert verdict(BODY + b"!") == "SignatureDoesNotMatch"  # another size: Content-Length is signed
    assert verdict(BODY[:-1]) == "SignatureDoesNotMatch"
    forged = base64.b64encode(hashlib.sha256(other).digest()).decode()
    assert verdict(other, **{"x-amz-checksum-sha256": forged}) == "SignatureDoesNotMatch"
    no_checksum = http.build_request("PUT", target.url, content=BODY, headers={"Content-Type": "image/png"})
    assert s3_verdict(no_checksum, SECRET, at) == "SignatureDoesNotMatch"


async def test_upload_urls_expire_when_asked(store: S3Store, http: httpx.AsyncClient) -> None:
    def expiry(target: UploadTarget) -> datetime:
        params = query(target.url)
        signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return signed_at + timedelta(seconds=int(params["X-Amz-Expires"]))

    asked = now_ms() + 600_000
    target = store.upload_target("a/3", size=3, mime="image/png", sha256=sha(b"abc"), expires_at_ms=asked)
    expires = expiry(target)
    expires_ms = int(expires.timestamp() * 1000)
    assert asked - 3_000 <= expires_ms <= asked  # never later than asked
    assert target.expires_at in (expires_ms, expires_ms - 1000)  # never later than the URL's expiry
    request = http.build_request("PUT", target.url, content=b"abc", headers=target.headers)
    assert s3_verdict(request, SECRET, expires - timedelta(seconds=1)) is None
    assert s3_verdict(request, SECRET, expires + timedelta(seconds=1)) == "AccessDenied"

    asked = now_ms() - 5_000
    past = store.upload_target("a/3", size=3, mime="image/png", sha256=sha(b"abc"), expires_at_ms=asked)
    assert query(past.url)["X-Amz-Expires"] == "1"  # the least S3 takes
    assert past.expires_at == asked
    past_request = http.build_request("PUT", past.url, content=b"abc", headers=past.headers)
    assert s3_verdict(past_request, SECRET, datetime.now(UTC) + timedelta(seconds=3)) == "AccessDenied"

    asked = now_ms() + 30 * 86_400_000
    far = store.upload_target("a/3", size=3, mime="image/png", sha256=sha(b"abc"), expires_at_ms=asked)
    assert int(query(far.url)["X-Amz-Expires"]) == MAX_PRESIGN_SECONDS  # SigV4's limit: 7 days
    assert far.expires_at <= now_ms() + MAX_PRESIGN_SECONDS * 1000


async def test_a_different_body_is_seen_by_stat_even_where_the_server_does_not_check(
    store: S3Store, http: httpx.AsyncClient
) -> None:
    """moto stores a body that does not match x-amz-checksum-sha256 (AWS S3 answers BadDigest);
    stat then reports the digest of the bytes stored, not the one declared."""
    target = target_for(store, "a/4")
    other = bytes(reversed(BODY))
    response = await http.put(target.url, content=other, headers=target.headers)
    assert response.status_code == 200  # moto: no check
    info = await store.stat("a/4")
    assert info == ObjectInfo(size=len(other), sha256=sha(other))
    assert info.sha256 != sha(BODY)


async def test_what_moto_does_not_check(store: S3Store, http: httpx.AsyncClient, admin: Any, bucket: str) -> None:
    """Pins the gaps listed in this module's docstring."""
    target = target_for(store, "gap")

    async def put(url: str, content: Any, headers: dict[str, str]) -> int:
        return (await http.put(url, content=content, headers=headers)).status_code

    assert await put(target.url, bytes(reversed(BODY)), target.headers) == 200  # other bytes
    assert await put(target.url, BODY, {**target.headers, "Content-Type": "text/html"}) == 200  # other type
    head = await asyncio.to_thread(admin.head_object, Bucket=bucket, Key="gap")
    assert head["ContentType"] == "text/html"
    assert await put(target.url, BODY + b"more", target.headers) == 200  # other size
    assert await put(target.url, BODY, {"Content-Type": "image/png"}) == 200  # no checksum header

    async def stream() -> AsyncIterator[bytes]:
        yield BODY

    chunked = http.build_request("PUT", target.url, content=stream(), headers=target.headers)
    assert "content-length" not in chunked.headers
    assert (await http.send(chunked)).status_code == 200  # no Content-Length
    params = query(target.url)
    stale = target.url.replace(params["X-Amz-Date"], "20000101T000000Z")  # expired 26 years ago
    assert await put(stale, BODY, target.headers) == 200
    forged = target.url.replace(params["X-Amz-Signature"], "0" * 64)
    assert await put(forged, BODY, target.headers) == 200
    head = await asyncio.to_thread(admin.head_object, Bucket=bucket, Key="gap", ChecksumMode="ENABLED")
    assert "ChecksumSHA256" not in head  # a presigned PUT leaves no checksum on moto: stat hashes


@pytest.mark.parametrize(
    ("mime", "disposition"),
    [
        ("image/png", None),
        ("image/jpeg", None),
        ("image/gif", None),
        ("image/webp", None),
        ("audio/ogg", None),
        ("video/mp4", None),
        ("image/svg+xml", "attachment"),
        ("text/html", "attachment"),
        ("application/pdf", "attachment"),
    ],
)
async def test_download_url_serves_the_bytes_with_type_and_disposition(
    store: S3Store, http: httpx.AsyncClient, mime: str, disposition: str | None
) -> None:
    target = target_for(store, "d/1", mime=mime, ttl_ms=60_000)
    assert (await http.put(target.url, content=BODY, headers=target.headers)).status_code == 200
    url = store.download_url("d/1", uid="u1", mime=mime, expires_at_ms=now_ms() + 60_000)
    assert 57 <= int(query(url)["X-Amz-Expires"]) < 60
    response = await http.get(url)
    assert response.status_code == 200
    assert response.content == BODY
    assert response.headers["content-type"] == mime
    assert response.headers.get("content-disposition") == disposition


async def test_stat_of_a_missing_key_is_none(store: S3Store) -> None:
    assert await store.stat("never/uploaded") is None


async def test_stat_uses_the_checksum_the_server_keeps(store: S3Store, admin: Any, bucket: str) -> None:
    """A server that keeps the SHA-256 (S3 keeps the one it verified) is believed without reading
    the object back. To tell the two paths apart, the object is put the one way moto keeps a
    checksum it did not verify: declared for other bytes."""
    declared = hashlib.sha256(b"what the server keeps").digest()
    await asyncio.to_thread(
        admin.put_object,
        Bucket=bucket,
        Key="k/kept",
        Body=BODY,
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=base64.b64encode(declared).decode(),
    )
    assert await store.stat("k/kept") == ObjectInfo(size=len(BODY), sha256=declared.hex())


async def test_stat_reads_back_a_multipart_object(store: S3Store, admin: Any, bucket: str) -> None:
    """A multipart object's SHA-256 is the digest of its parts' digests (moto does not mark it as
    such): stat hashes the bytes instead."""

    def upload() -> None:
        started = admin.create_multipart_upload(Bucket=bucket, Key="k/multi", ChecksumAlgorithm="SHA256")
        part = admin.upload_part(
            Bucket=bucket,
            Key="k/multi",
            UploadId=started["UploadId"],
            PartNumber=1,
            Body=BODY,
            ChecksumAlgorithm="SHA256",
        )
        admin.complete_multipart_upload(
            Bucket=bucket,
            Key="k/multi",
            UploadId=started["UploadId"],
            MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": part["ETag"], "ChecksumSHA256": part["ChecksumSHA256"]}]
            },
        )

    await asyncio.to_thread(upload)
    head = await asyncio.to_thread(admin.head_object, Bucket=bucket, Key="k/multi", ChecksumMode="ENABLED")
    assert base64.b64decode(head["ChecksumSHA256"]).hex() != sha(BODY)  # what stat must not report
    assert await store.stat("k/multi") == ObjectInfo(size=len(BODY), sha256=sha(BODY))


async def test_delete_removes_and_missing_keys_are_fine(store: S3Store, http: httpx.AsyncClient) -> None:
    for key in ("x/1", "x/2"):
        target = target_for(store, key, ttl_ms=60_000)
        assert (await http.put(target.url, content=BODY, headers=target.headers)).status_code == 200
    await store.delete(["x/1", "x/missing"])
    assert await store.stat("x/1") is None
    assert await store.stat("x/2") is not None
    await store.delete(["x/1"])  # again: gone already
    await store.delete([])


async def test_read_gives_the_bytes_in_chunks_and_nothing_for_a_missing_key(store: S3Store, admin: Any,
                                                                          bucket: str) -> None:
    """What an export copies (docs/privacy.md): the object's bytes as stored, a chunk at a time."""
    big = bytes(range(256)) * 5000  # more than one chunk
    await asyncio.to_thread(admin.put_object, Bucket=bucket, Key="r/1", Body=big)
    chunks = [c async for c in store.read("r/1")]
    assert b"".join(chunks) == big and len(chunks) >= 2
    assert [c async for c in store.read("r/missing")] == []


async def test_delete_goes_in_batches_of_1000(store: S3Store, admin: Any, bucket: str) -> None:
    present = {0: "b/first", 1000: "b/second-batch", 2400: "b/third-batch"}

    def put_all() -> None:
        for key in present.values():
            admin.put_object(Bucket=bucket, Key=key, Body=b"x")

    await asyncio.to_thread(put_all)
    keys = [present.get(i, f"b/missing-{i}") for i in range(2500)]
    await store.delete(keys)
    for key in present.values():
        assert await store.stat(key) is None, key


async def test_prefix_and_public_endpoint(endpoint: str, bucket: str, admin: Any, http: httpx.AsyncClient) -> None:
    public = endpoint.replace("127.0.0.1", "localhost")
    s3 = await S3Store.create(
        bucket,
        endpoint_url=endpoint,
        region=REGION,
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
        public_endpoint_url=public,
        prefix="/imgate/files/",
    )
    try:
        target = target_for(s3, "p/1", ttl_ms=60_000)
        assert target.url.startswith(f"{public}/{bucket}/imgate/files/p/1?")
        request = http.build_request("PUT", target.url, content=BODY, headers=target.headers)
        assert request.headers["host"] == urlsplit(public).netloc  # the host the signature covers
        assert s3_verdict(request, SECRET, datetime.now(UTC)) is None
        assert (await http.send(request)).status_code == 200
        head = await asyncio.to_thread(admin.head_object, Bucket=bucket, Key="imgate/files/p/1")
        assert head["ContentLength"] == len(BODY)
        assert await s3.stat("p/1") == ObjectInfo(size=len(BODY), sha256=sha(BODY))  # through `endpoint`
        assert s3.download_url("p/1", uid="u", mime="image/png", expires_at_ms=now_ms() + 60_000).startswith(
            f"{public}/{bucket}/imgate/files/p/1?"
        )
        await s3.delete(["p/1"])
        assert await s3.stat("p/1") is None
    finally:
        await s3.close()


def only_aws_config(monkeypatch: pytest.MonkeyPatch, config: Path, credentials: Path) -> None:
    """The AWS credential chain sees these files and nothing else: no keys in the environment, no
    container or instance metadata endpoint (never reached for: they are not on this machine)."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def write_credentials(path: Path, key_id: str, minutes: int) -> None:
    expiry = datetime.now(UTC) + timedelta(minutes=minutes)
    path.write_text(
        json.dumps(
            {
                "Version": 1,
                "AccessKeyId": key_id,
                "SecretAccessKey": f"secret-of-{key_id}",
                "SessionToken": f"token-of-{key_id}",
                "Expiration": expiry.isoformat(),
            }
        )
    )


async def test_temporary_credentials_from_the_chain_are_refreshed(
    endpoint: str, bucket: str, http: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No keys: the AWS chain, here a credential_process giving temporary credentials; presigning
    uses the latest snapshot of them."""
    current = tmp_path / "credentials.json"
    script = tmp_path / "credential_process.py"
    script.write_text("import sys\nprint(open(sys.argv[1]).read())\n")
    config = tmp_path / "config"
    config.write_text(f"[default]\ncredential_process = {sys.executable} {script} {current}\n")
    only_aws_config(monkeypatch, config, tmp_path / "none")
    write_credentials(current, "ASIAFIRST", minutes=5)  # within botocore's refresh window
    s3 = await S3Store.create(bucket, endpoint_url=endpoint, region=REGION, access_key_id=None, secret_access_key=None)
    try:
        first = query(s3.download_url("t", uid="u", mime="image/png", expires_at_ms=now_ms() + 60_000))
        assert first["X-Amz-Credential"].startswith("ASIAFIRST/")
        assert first["X-Amz-Security-Token"] == "token-of-ASIAFIRST"
        target = target_for(s3, "t", ttl_ms=60_000)
        request = http.build_request("PUT", target.url, content=BODY, headers=target.headers)
        assert s3_verdict(request, "secret-of-ASIAFIRST", datetime.now(UTC)) is None
        assert (await http.send(request)).status_code == 200
        assert await s3.stat("t") == ObjectInfo(size=len(BODY), sha256=sha(BODY))

        write_credentials(current, "ASIASECOND", minutes=60)
        await s3.refresh_credentials()
        second = query(s3.download_url("t", uid="u", mime="image/png", expires_at_ms=now_ms() + 60_000))
        assert second["X-Amz-Credential"].startswith("ASIASECOND/")
        assert second["X-Amz-Security-Token"] == "token-of-ASIASECOND"
    finally:
        await s3.close()


async def test_a_store_works_once_open(endpoint: str, bucket: str) -> None:
    s3 = S3Store(bucket, endpoint_url=endpoint, region=REGION, access_key_id=KEY_ID, secret_access_key=SECRET)
    with pytest.raises(RuntimeError, match="not open"):
        target_for(s3, "o/1")
    await s3.open()
    try:
        await s3.open()  # once is enough
        assert query(target_for(s3, "o/1").url)["X-Amz-Credential"].startswith(f"{KEY_ID}/")
        assert await s3.stat("o/1") is None
    finally:
        await s3.close()
    await s3.close()  # twice is fine


async def test_no_credentials_anywhere_is_an_error(
    endpoint: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    only_aws_config(monkeypatch, tmp_path / "none", tmp_path / "none")
    with pytest.raises(RuntimeError, match="no S3 credentials"):
        await S3Store.create(bucket, endpoint_url=endpoint, region=REGION, access_key_id=None, secret_access_key=None)
    with pytest.raises(ValueError, match="both"):
        S3Store(bucket, endpoint_url=endpoint, region=REGION, access_key_id=KEY_ID, secret_access_key=None)


_LOOP_IO: list[tuple[str, str]] | None = None
_LOOP_THREAD: int | None = None
_HOOKED = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _LOOP_IO is None or threading.get_ident() != _LOOP_THREAD:
        return
    if event in ("socket.connect", "socket.getaddrinfo"):
        _LOOP_IO.append((event, repr(args)))
    elif event == "open" and not str(args[0]).endswith((".py", ".pyc")):  # imports aside
        _LOOP_IO.append((event, str(args[0])))


async def test_opening_and_presigning_do_no_io_in_the_event_loop(endpoint: str, bucket: str) -> None:
    """Opening reads botocore's models and the AWS config files in a worker thread; presigning
    opens no file and no connection (audit hooks see the event loop's thread)."""
    global _LOOP_IO, _LOOP_THREAD, _HOOKED
    if not _HOOKED:
        sys.addaudithook(_audit)  # stays for the process; records only inside this test
        _HOOKED = True
    _LOOP_THREAD = threading.get_ident()
    _LOOP_IO = []
    try:
        s3 = await S3Store.create(
            bucket, endpoint_url=endpoint, region=REGION, access_key_id=KEY_ID, secret_access_key=SECRET
        )
        opened = list(_LOOP_IO)
        _LOOP_IO.clear()
        s3.upload_target("io/1", size=1, mime="image/png", sha256=sha(b"x"), expires_at_ms=now_ms() + 60_000)
        s3.download_url("io/1", uid="u", mime="text/plain", expires_at_ms=now_ms() + 60_000)
        presigned = list(_LOOP_IO)
        _LOOP_IO.clear()
        assert await s3.stat("io/1") is None
        stat_io = list(_LOOP_IO)  # the hook sees: a request did go out from the loop's thread
    finally:
        _LOOP_IO = None
    await s3.close()
    assert opened == []
    assert presigned == []
    assert any(event == "socket.connect" for event, _ in stat_io)
