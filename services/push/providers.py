"""Push providers: real clients of the real APIs, with configurable base URLs (tests point them
at local servers that speak the same API)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import httpx

from services.push.webhooks import TRANSPORT_ERRORS, TargetRefused, WebhookClient


class Outcome(str, Enum):
    SENT = "sent"
    RETRY = "retry"  # 429, 5xx, timeouts: try again later
    INVALID = "invalid"  # the provider says the token is gone: remove the target
    FAILED = "failed"  # a permanent error for this push (bad request): drop it


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    detail: str = ""


class Provider(Protocol):
    async def send(self, token: str, payload: dict[str, Any]) -> Result: ...


def _http_result(status: int, text: str) -> Result:
    if 200 <= status < 300:
        return Result(Outcome.SENT)
    if status == 429 or status >= 500:
        return Result(Outcome.RETRY, f"HTTP {status}")
    return Result(Outcome.FAILED, f"HTTP {status}: {text[:200]}")


class WebhookProvider:
    """POST the payload as JSON to the target URL, signed: ``X-Imgate-Signature: sha256=<hex>``
    is the HMAC-SHA256 of the body with the configured secret. The URL is checked again before
    every POST and the connection goes only where the policy allows (``webhooks.WebhookClient``);
    a target that is refused now (e.g. its name resolves to a private address since it was
    registered, or the operator no longer allows it) is reported invalid, so it is removed."""

    def __init__(self, client: WebhookClient, secret: str) -> None:
        self._client = client
        self._secret = secret.encode()

    def host_of(self, token: str) -> str | None:
        """The host a target's POSTs go to (the per-host concurrency cap counts by it), or None if
        the URL is not allowed."""
        try:
            return self._client.policy.parse(token).host_key
        except TargetRefused:
            return None

    async def send(self, token: str, payload: dict[str, Any]) -> Result:
        body = json.dumps(payload, separators=(",", ":")).encode()
        signature = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        try:
            target = self._client.policy.parse(token)
            status, text = await self._client.post(target, body, {
                "Content-Type": "application/json", "X-Imgate-Signature": f"sha256={signature}"})
        except TargetRefused as exc:
            return Result(Outcome.INVALID, f"refused: {exc}")
        except TRANSPORT_ERRORS as exc:
            return Result(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        if status in (404, 410):
            return Result(Outcome.INVALID, f"HTTP {status}")
        return _http_result(status, text.decode("utf-8", "replace"))


class FcmProvider:
    """FCM HTTP v1: ``POST {base}/v1/projects/{project}/messages:send`` with an OAuth2 access
    token obtained from a service-account key by the JWT-bearer grant (RS256)."""

    def __init__(self, client: httpx.AsyncClient, service_account: dict[str, Any], *, base_url: str,
                 scope: str = "https://www.googleapis.com/auth/firebase.messaging") -> None:
        self._client = client
        self._account = service_account
        self._base = base_url.rstrip("/")
        self._scope = scope
        self._token: tuple[str, float] | None = None
        self._refresh = asyncio.Lock()

    async def _access_token(self) -> str:
        async with self._refresh:  # concurrent sends share one token request
            if self._token is not None and self._token[1] > time.time() + 60:
                return self._token[0]
            import jwt  # PyJWT, with cryptography for RS256

            now = int(time.time())
            assertion = jwt.encode({"iss": self._account["client_email"], "scope": self._scope,
                                    "aud": self._account["token_uri"], "iat": now, "exp": now + 3600},
                                   self._account["private_key"], algorithm="RS256")
            r = await self._client.post(self._account["token_uri"], data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion})
            r.raise_for_status()
            body = r.json()
            self._token = (body["access_token"], now + float(body.get("expires_in", 3600)))
            return self._token[0]

    async def send(self, token: str, payload: dict[str, Any]) -> Result:
        try:
            access = await self._access_token()
            r = await self._client.post(
                f"{self._base}/v1/projects/{self._account['project_id']}/messages:send",
                headers={"Authorization": f"Bearer {access}"},
                json={"message": {"token": token, "data": {k: str(v) for k, v in payload.items()}}})
        except httpx.HTTPError as exc:
            return Result(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        if r.status_code in (400, 404):
            try:
                details = r.json().get("error", {}).get("details", [])
            except ValueError:
                details = []
            if any(d.get("errorCode") in ("UNREGISTERED", "INVALID_ARGUMENT") for d in details):
                return Result(Outcome.INVALID, r.text[:200])
        if r.status_code == 401:
            self._token = None
            return Result(Outcome.RETRY, "HTTP 401: access token refused")
        return _http_result(r.status_code, r.text)


class ApnsProvider:
    """APNs over HTTP/2 with token auth: ``POST {base}/3/device/{token}``, an ES256 JWT
    (``iss`` = team id, ``kid`` = key id, renewed every 50 minutes), ``apns-topic`` (the bundle
    id), ``apns-push-type``, ``apns-priority`` and ``apns-collapse-id``."""

    def __init__(self, client: httpx.AsyncClient, *, key_pem: str, key_id: str, team_id: str, topic: str,
                 base_url: str) -> None:
        self._client = client  # must speak HTTP/2 (httpx.AsyncClient(http2=True))
        self._key, self._key_id, self._team, self._topic = key_pem, key_id, team_id, topic
        self._base = base_url.rstrip("/")
        self._jwt: tuple[str, float] | None = None

    def _bearer(self) -> str:
        import jwt

        now = time.time()
        if self._jwt is None or now - self._jwt[1] > 50 * 60:
            token = jwt.encode({"iss": self._team, "iat": int(now)}, self._key, algorithm="ES256",
                               headers={"kid": self._key_id})
            self._jwt = (token, now)
        return self._jwt[0]

    async def send(self, token: str, payload: dict[str, Any]) -> Result:
        preview = "text" in payload or "from" in payload
        aps: dict[str, Any] = {"badge": int(payload.get("badge", 0))}
        if preview:
            aps["alert"] = {"title": str(payload.get("from", "")), "body": str(payload.get("text", ""))}
            aps["sound"] = "default"
        else:
            aps["content-available"] = 1
        body = {"aps": aps, **{k: v for k, v in payload.items() if k not in ("badge", "text", "from")}}
        headers = {"authorization": f"bearer {self._bearer()}", "apns-topic": self._topic,
                   "apns-push-type": "alert" if preview else "background",
                   "apns-priority": "10" if preview else "5"}
        if "conv" in payload:
            headers["apns-collapse-id"] = str(payload["conv"])[:64]
        try:
            r = await self._client.post(f"{self._base}/3/device/{token}", json=body, headers=headers)
        except httpx.HTTPError as exc:
            return Result(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        try:
            reason = r.json().get("reason", "") if r.content else ""
        except ValueError:
            reason = ""
        if r.status_code == 410 or reason in ("BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"):
            return Result(Outcome.INVALID, f"HTTP {r.status_code} {reason}")
        if r.status_code == 403 and reason == "ExpiredProviderToken":
            self._jwt = None
            return Result(Outcome.RETRY, reason)
        return _http_result(r.status_code, reason or r.text)
