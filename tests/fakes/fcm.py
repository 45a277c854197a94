"""A local FCM HTTP v1 server: the OAuth2 JWT-bearer token endpoint and messages:send, checking
requests as Google does (grant type, RS256 signature and claims, bearer token, body schema) and
answering with FCM's success and error shapes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def _fcm_error(status: int, status_name: str, message: str, error_code: str | None = None) -> JSONResponse:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}] \
        if error_code else []
    return JSONResponse({"error": {"code": status, "message": message, "status": status_name, "details": details}},
                        status_code=status)


@dataclass
class FakeFcm:
    project: str = "imgate-test"
    unregistered: set[str] = field(default_factory=set)
    busy: dict[str, int] = field(default_factory=dict)  # token -> how many 429s before success
    received: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""

    def __post_init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public = key.public_key()
        self.private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode()
        self._tokens: set[str] = set()
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[
            Route("/token", self._token, methods=["POST"]),
            Route("/v1/projects/{project}/messages:send", self._send, methods=["POST"]),
        ])

    def service_account(self) -> dict[str, Any]:
        return {"type": "service_account", "project_id": self.project, "client_email": "push@imgate-test.iam",
                "private_key": self.private_pem, "token_uri": f"{self.base_url}/token"}

    async def _token(self, request: Request) -> JSONResponse:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        try:
            claims = jwt.decode(str(form.get("assertion")), self._public, algorithms=["RS256"],
                                audience=f"{self.base_url}/token")
        except jwt.PyJWTError as exc:
            return JSONResponse({"error": "invalid_grant", "error_description": str(exc)}, status_code=400)
        if claims.get("iss") != "push@imgate-test.iam" or claims.get("scope") != SCOPE \
                or claims["exp"] - claims["iat"] > 3600:
            return JSONResponse({"error": "invalid_grant", "error_description": "bad claims"}, status_code=400)
        token = f"ya29.fake-{next(self._ids)}"
        self._tokens.add(token)
        return JSONResponse({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    async def _send(self, request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self._tokens:
            return _fcm_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        if request.path_params["project"] != self.project:
            return _fcm_error(403, "PERMISSION_DENIED", "wrong project")
        body = await request.json()
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("token"), str):
            return _fcm_error(400, "INVALID_ARGUMENT", "message.token is required", "INVALID_ARGUMENT")
        data = message.get("data", {})
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return _fcm_error(400, "INVALID_ARGUMENT", "data values must be strings", "INVALID_ARGUMENT")
        token = message["token"]
        if token in self.unregistered:
            return _fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        if self.busy.get(token, 0) > 0:
            self.busy[token] -= 1
            return _fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED")
        self.received.append(message)
        return JSONResponse({"name": f"projects/{self.project}/messages/{next(self._ids)}"})
