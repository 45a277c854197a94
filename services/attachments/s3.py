"""Attachments on S3-compatible object storage (AWS S3, MinIO, Ceph RGW) with presigned URLs.

Two clients, one set of credentials:

* an aiobotocore client for everything that goes over the network (``stat``: HEAD, and GET when
  the server keeps no checksum; ``delete``: DeleteObjects);
* a plain (synchronous) botocore client used only to presign. ``upload_target`` and
  ``download_url`` are synchronous in :class:`ObjectStore`, and aiobotocore's presigner is a
  coroutine (it awaits the credentials), so it cannot serve them. botocore's presigner is pure
  computation (SigV4 over the request it would send; it never connects), provided its credentials
  never need refreshing on use: it signs with a frozen snapshot of the credentials, taken when the
  store opens and, for temporary credentials (role, SSO, credential_process...), again every
  minute by :meth:`S3Store.refresh_loop` (a task of the composition root) from the aiobotocore
  client's credentials (which aiobotocore
  refreshes asynchronously, 15 minutes before they expire). So signing never triggers a refresh,
  i.e. network I/O, in the event loop.

Build it with ``await S3Store.create(...)`` (or ``S3Store(...)`` then ``await store.open()``):
botocore's model files and the AWS config file are read in a worker thread, not in the event loop
(with the AWS credential chain, aiobotocore's own providers still read the shared credentials file
once, in the loop, when the store opens).

The upload URL's signature covers ``Content-Type``, ``Content-Length`` and
``x-amz-checksum-sha256``: S3 refuses a PUT whose type or length differs (SignatureDoesNotMatch)
and one whose bytes do not match the declared SHA-256 (BadDigest). Servers that do not check
everything (moto checks none of it; see tests/services/test_s3_store.py) are covered by ``stat``,
which reports the digest of the bytes actually stored.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import botocore.session  # type: ignore[import-untyped]
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import AioSession  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.credentials import (  # type: ignore[import-untyped]
    CredentialProvider,
    CredentialResolver,
    Credentials,
    ReadOnlyCredentials,
    RefreshableCredentials,
)
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from services.attachments.store import ObjectInfo, UploadTarget, inline

log = logging.getLogger(__name__)

MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 presigned URLs live at most 7 days
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
CREDENTIALS_REFRESH_SECONDS = 60.0
_HASH_CHUNK = 1 << 20
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


class S3StoreError(Exception):
    """S3 answered, but refused part of the work (e.g. some keys of a DeleteObjects)."""


class _SigningCredentials(Credentials):  # type: ignore[misc]
    """The presigning client's credentials: the snapshot the store took last. Unlike botocore's
    refreshable credentials, reading them never refreshes (never does I/O)."""

    def __init__(self) -> None:
        super().__init__("", "")
        self.frozen: Any = None  # ReadOnlyCredentials

    def get_frozen_credentials(self) -> Any:
        if self.frozen is None:
            msg = "S3Store is not open"
            raise RuntimeError(msg)
        return self.frozen


class _FixedProvider(CredentialProvider):  # type: ignore[misc]
    METHOD = "imgate-s3store"

    def __init__(self, credentials: _SigningCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> _SigningCredentials:
        return self._credentials


def _inline(mime: str) -> bool:
    base = mime.split(";", 1)[0].strip().lower()
    return inline(base)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store:
    """:class:`~services.attachments.store.ObjectStore` on an S3-compatible bucket.

    ``endpoint_url``: the server (MinIO, Ceph...; None: AWS). ``public_endpoint_url``: the
    endpoint written into presigned URLs when clients reach the server by another address (e.g.
    MinIO behind a reverse proxy, which must pass the ``Host`` header through unchanged: it is
    signed). Access keys: None for the AWS credential chain (environment, profile, role).
    ``prefix``: every key is stored under ``prefix/``.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
        public_endpoint_url: str | None = None,
        prefix: str = "",
    ) -> None:
        if (access_key_id is None) != (secret_access_key is None):
            msg = "give both access_key_id and secret_access_key, or neither (the AWS credential chain)"
            raise ValueError(msg)
        self.bucket = bucket
        self._endpoint_url = endpoint_url
        self._public_endpoint_url = public_endpoint_url or endpoint_url
        self._region = region
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._signing_credentials = _SigningCredentials()
        self._source_credentials: Any = None  # what the snapshot is taken from, when refreshable
        self._session: Any = None
        self._client: Any = None  # aiobotocore S3 client
        self._signer: Any = None  # botocore S3 client, presigning only
        self._exit = contextlib.AsyncExitStack()
        self.refreshes = False  # temporary credentials: run refresh_loop() beside it

    @classmethod
    async def create(cls, bucket: str, **options: Any) -> S3Store:
        """``S3Store(bucket, **options)``, opened."""
        store = cls(bucket, **options)
        await store.open()
        return store

    def _config(self, config_cls: Any) -> Any:
        # Path-style addressing for custom endpoints (MinIO and most S3-compatibles want it; it
        # needs no wildcard DNS); AWS picks virtual-hosted style itself.
        custom = self._endpoint_url is not None or self._public_endpoint_url is not None
        return config_cls(
            signature_version="s3v4",
            s3={"addressing_style": "path" if custom else "auto"},
            # Only the checksums an operation requires (DeleteObjects): the upload's checksum is
            # the client's, and a GET's body is hashed here anyway.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )

    def _prepare(self) -> Any:
        """In a worker thread: what reads files (botocore's models, the AWS config files) or, for
        the credential chain, may block; returns the presigning client."""
        self._session.get_scoped_config()
        signer_session = botocore.session.Session()
        # One loader for both sessions: the models it reads here are not read again in the loop.
        signer_session.register_component("data_loader", self._session.get_component("data_loader"))
        signer_session.register_component(
            "credential_provider", CredentialResolver([_FixedProvider(self._signing_credentials)])
        )
        return signer_session.create_client(
            "s3",
            region_name=self._region,
            endpoint_url=self._public_endpoint_url,
            config=self._config(Config),
        )

    async def open(self) -> None:
        """Make the clients and take the credentials (the store is unusable before; on failure it
        is closed again). :meth:`create` does it for you."""
        if self._client is not None:
            return
        try:
            await self._open()
        except BaseException:
            await self.close()
            raise

    async def _open(self) -> None:
        self._session = AioSession()
        self._signer = await asyncio.to_thread(self._prepare)
        self._client = await self._exit.enter_async_context(
            self._session.create_client(
                "s3",
                region_name=self._region,
                endpoint_url=self._endpoint_url,
                aws_access_key_id=self._access_key_id,
                aws_secret_access_key=self._secret_access_key,
                config=self._config(AioConfig),
            )
        )
        if self._access_key_id is not None:
            self._signing_credentials.frozen = ReadOnlyCredentials(self._access_key_id, self._secret_access_key, None)
            return
        # The chain: the credentials the aiobotocore client uses (the session keeps them).
        source = await self._session.get_credentials()
        if source is None:
            msg = "no S3 credentials: set files.s3_access_key_id/s3_secret_access_key or configure the AWS chain"
            raise RuntimeError(msg)
        self._signing_credentials.frozen = await source.get_frozen_credentials()
        if isinstance(source, RefreshableCredentials):
            self._source_credentials = source
            self.refreshes = True

    async def refresh_credentials(self) -> None:
        """Take a new snapshot of temporary credentials (aiobotocore refreshes them, asynchronously,
        when they are near their expiry). Runs every minute by itself; a no-op for fixed keys."""
        if self._source_credentials is not None:
            self._signing_credentials.frozen = await self._source_credentials.get_frozen_credentials()

    async def refresh_loop(self) -> None:
        """Take a new snapshot every minute, until cancelled (a task of the composition root's,
        when ``refreshes``: the credentials are temporary)."""
        while True:
            await asyncio.sleep(CREDENTIALS_REFRESH_SECONDS)
            try:
                await self.refresh_credentials()
            except Exception:  # keep signing with the last snapshot; try again next time
                log.exception("refreshing the S3 credentials failed")

    def _key(self, key: str) -> str:
        return self._prefix + key

    def _opened(self, client: Any) -> Any:
        if client is None:
            msg = "S3Store is not open (`await store.open()`, or build it with `await S3Store.create(...)`)"
            raise RuntimeError(msg)
        return client

    @staticmethod
    def _expires_in(expires_at_ms: int) -> tuple[int, int]:
        """(X-Amz-Expires, the time until which the URL surely works, ms). The URL expires
        X-Amz-Expires seconds after its X-Amz-Date, the signing time in whole seconds: this second
        or, if one ticks by before botocore reads the clock, the next. So it lives at most until
        ``expires_at_ms``, and at least 1 s (the least S3 takes) and at most 7 days (the most)."""
        signed_s = time.time_ns() // 1_000_000_000
        seconds = min(max(expires_at_ms // 1000 - signed_s - 1, 1), MAX_PRESIGN_SECONDS)
        return seconds, min(expires_at_ms, (signed_s + seconds) * 1000)

    def upload_target(self, key: str, *, size: int, mime: str, sha256: str, expires_at_ms: int) -> UploadTarget:
        if size < 0:
            msg = f"size must be >= 0, not {size}"
            raise ValueError(msg)
        digest = bytes.fromhex(sha256)
        if len(digest) != 32:
            msg = "sha256 must be 64 hex digits"
            raise ValueError(msg)
        checksum = base64.b64encode(digest).decode("ascii")
        seconds, expires_at = self._expires_in(expires_at_ms)
        url = self._opened(self._signer).generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._key(key),
                "ContentType": mime,
                "ContentLength": size,
                "ChecksumSHA256": checksum,
            },
            ExpiresIn=seconds,
            HttpMethod="PUT",
        )
        # Content-Length is signed too; every HTTP client sets it from the body (which must be
        # sent whole, not chunked).
        return UploadTarget(
            url=str(url),
            method="PUT",
            headers={"Content-Type": mime, "x-amz-checksum-sha256": checksum},
            expires_at=expires_at,
        )

    def download_url(self, key: str, *, uid: str, mime: str, expires_at_ms: int) -> str:
        del uid  # S3 does not know imgate's users: whoever holds the URL may GET until it expires
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key), "ResponseContentType": mime}
        if not _inline(mime):
            params["ResponseContentDisposition"] = "attachment"
        seconds, _ = self._expires_in(expires_at_ms)
        return str(self._opened(self._signer).generate_presigned_url("get_object", Params=params, ExpiresIn=seconds))

    async def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = await self._opened(self._client).head_object(
                Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED"
            )
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                return None
            raise
        checksum = head.get("ChecksumSHA256")
        # Only a single PUT's checksum is the SHA-256 of the bytes: a multipart upload's (ETag
        # "…-N") is the digest of its parts' digests, marked "…-N" / COMPOSITE by S3, unmarked by
        # moto. imgate's uploads are single PUTs; anything else is read back and hashed.
        single_put = "-" not in str(head.get("ETag", "")) and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
        if checksum and single_put and "-" not in checksum:
            return ObjectInfo(size=int(head["ContentLength"]), sha256=base64.b64decode(checksum).hex())
        return await self._hash(key)

    async def _hash(self, key: str) -> ObjectInfo | None:
        """Size and SHA-256 of the stored bytes, read back (servers that keep no SHA-256)."""
        try:
            response = await self._opened(self._client).get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                return None  # deleted since the HEAD
            raise
        digest = hashlib.sha256()
        size = 0
        stream = response["Body"]
        async with stream:  # releases the connection, read to the end or not
            while chunk := await stream.read(_HASH_CHUNK):
                await asyncio.to_thread(digest.update, chunk)  # 1 MiB of SHA-256: off the event loop
                size += len(chunk)
        return ObjectInfo(size=size, sha256=digest.hexdigest())

    async def read(self, key: str) -> AsyncIterator[bytes]:
        try:
            response = await self._opened(self._client).get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                return
            raise
        stream = response["Body"]
        async with stream:
            while chunk := await stream.read(_HASH_CHUNK):
                yield chunk

    async def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            response = await self._opened(self._client).delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self._key(k)} for k in batch], "Quiet": True},
            )
            errors = response.get("Errors") or []
            if errors:  # a missing key is no error to S3: these are refusals (e.g. AccessDenied)
                first = errors[0]
                msg = f"S3 refused to delete {len(errors)} object(s), e.g. {first.get('Key')}: {first.get('Code')}"
                raise S3StoreError(msg)

    async def close(self) -> None:
        await self._exit.aclose()
        self._client = None
        if self._signer is not None:
            self._signer.close()  # no connection was ever opened: nothing to wait for
            self._signer = None
