"""The ``before_*`` callbacks (docs/callbacks.md, "Before"): the operator's endpoint decides on a
send, an edit or a profile change before it is stored.

One endpoint takes each event (``callbacks.endpoints[].events``). imgate POSTs the event as JSON,
signed (``services.callbacks.signing``), through the shared outbound guard (``services.netguard``:
https and public addresses only, checked again at connect time, unless ``callbacks.allow_http`` /
``callbacks.allow`` say otherwise), and waits at most the endpoint's ``timeout_s`` in all (the
wait for a free place included). The answer:

- ``{"action": "allow"}``: go on as sent;
- ``{"action": "refuse", "code": "<[a-z0-9_.-]{1,64}>", "message"?: "..."}``: nothing is done;
  the sender gets the error ``refused`` with ``reason`` = the code (``Refused``);
- ``{"action": "replace", "text": "...", "mentions"?: [...]}`` (send, edit) or
  ``{"action": "replace", "name"?: "...", "status"?: "..."}`` (profile): go on with these instead.

Anything else (a timeout, no connection, the guard's refusal, a status other than 2xx, an answer
that is not one of these or longer than ``callbacks.max_response_bytes``) is a failure: the
endpoint's ``on_failure`` applies (``allow``: as sent; ``refuse``: ``refused`` with the reason
``callback_unavailable``).

The requests go out through ``services.callbacks.http.CallbackClient`` (the guard's checks, a lean
HTTP/1.1). At most ``MAX_INFLIGHT`` requests are out at once to each endpoint (places of its own: a dead
endpoint holding all of its places takes none of another's); when that many are, the places are handed
round-robin between the senders waiting (``FairLimiter``), so one sender's many calls do not keep
the others' waiting. No MQTT here: the bridge (and the scheduled sends' delivery) call it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Container
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from config.settings import CallbackEndpoint, CallbackSettings
from services.callbacks.http import CallbackClient
from services.callbacks.signing import EVENT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER, sign
from services.errors import BadRequest, Refused, TooLarge
from services.ids import Clock, SystemClock, new_ulid
from services.messages.commands import FORWARD_TYPE, SendCommand, StoredMessage
from services.netguard import OutboundPolicy, OutboundUrl, TargetRefused

log = logging.getLogger("imgate.callbacks")

MAX_INFLIGHT = 256  # before_* requests out at once to one endpoint (so at most as many connections)
UNAVAILABLE_REASON = "callback_unavailable"  # on_failure = refuse: the reason the sender sees
BEFORE_EVENTS = ("before_send", "before_edit", "before_profile")
_REASON = r"^[a-z0-9_.-]{1,64}$"
_T = TypeVar("_T")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Allow(_Answer):
    action: Literal["allow"]


class Refuse(_Answer):
    action: Literal["refuse"]
    code: str = Field(pattern=_REASON)
    message: str | None = Field(None, max_length=256)


class Replace(_Answer):
    action: Literal["replace"]
    text: str | None = Field(None, min_length=1, max_length=65536)  # the message service checks max_text
    mentions: list[str] | None = Field(None, max_length=100)  # a send's: a subset of the sender's
    name: str | None = Field(None, max_length=256)  # a profile's: checked again as profile.set checks it
    status: str | None = Field(None, max_length=1024)


Answer = Allow | Refuse | Replace
_ANSWER: TypeAdapter[Answer] = TypeAdapter(Annotated[Answer, Field(discriminator="action")])


class Malformed(Exception):
    """The endpoint's answer is not a valid one for the event (a failure: on_failure applies)."""


def parse_answer(status: int, body: bytes, cap: int) -> Answer:
    """The endpoint's answer, strictly: a 2xx status, at most ``cap`` bytes of JSON, one of the
    three actions with exactly its fields. Raises ``Malformed``."""
    if not 200 <= status < 300:
        msg = f"status {status}"
        raise Malformed(msg)
    if len(body) >= cap:
        msg = f"an answer of {cap} bytes or more"
        raise Malformed(msg)
    try:
        return _ANSWER.validate_json(body)
    except ValidationError as exc:
        msg = f"not an answer: {exc.errors()[0].get('msg', 'invalid')}"
        raise Malformed(msg) from None


# What makes a call a failure (on_failure applies): no answer in time, none at all, or not a valid one.
_FAILURES: tuple[type[Exception], ...] = (TargetRefused, Malformed, OSError)  # OSError: TimeoutError too


@dataclass(slots=True)
class BeforeStats:
    """Counters for /metrics and the tests."""

    calls: int = 0
    allowed: int = 0
    refused: int = 0
    replaced: int = 0
    failures: int = 0  # no valid answer in time: on_failure applied


class FairLimiter:
    """At most ``cap`` holders at once; waiters are served round-robin by key (a sender), first
    come first served within a key."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._order: deque[str] = deque()

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        if self.used < self.cap and not self._order:
            self.used += 1
        else:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            queue = self._waiting.get(key)
            if queue is None:
                queue = self._waiting[key] = deque()
                self._order.append(key)
            queue.append(fut)
            try:
                await fut
            except BaseException:
                if fut.done() and not fut.cancelled():  # handed a place just as we gave up: pass it on
                    self._release()
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._order:  # hand the place to the next key's first live waiter
            key = self._order.popleft()
            queue = self._waiting[key]
            fut = queue.popleft()
            if queue:
                self._order.append(key)
            else:
                del self._waiting[key]
            if not fut.done():
                fut.set_result(None)
                return
        self.used -= 1


@dataclass(frozen=True, slots=True)
class _Endpoint:
    settings: CallbackEndpoint
    target: OutboundUrl


class BeforeCallbacks:
    """Asks the operator's endpoint about sends, edits and profile changes. Build it with
    ``build`` (None when no endpoint takes a ``before_*`` event: the callers then never wait);
    an async context manager (it owns the HTTP client)."""

    def __init__(self, settings: CallbackSettings, *, clock: Clock | None = None, max_text: int = 8000,
                 client: CallbackClient | None = None, bots: Container[str] = ()) -> None:
        """``max_text``: ``limits.max_text`` (a replaced text is checked as the router checks a
        client's); ``client``: what POSTs (default: a ``CallbackClient`` over the callbacks'
        outbound policy; anything with its ``post`` and ``aclose``); ``bots``: the bots this
        process knows (a send's event says ``bot``)."""
        self._settings = settings
        self._bots = bots
        self._max_text = max_text
        self._clock = clock or SystemClock()
        policy = OutboundPolicy(allow_http=settings.allow_http, allow=settings.allow,
                                resolve_timeout_s=settings.connect_timeout_s, noun="callback")
        self._endpoints: dict[str, _Endpoint] = {}
        self._limiters: dict[str, FairLimiter] = {}  # each endpoint's places (by its name)
        for i, e in enumerate(settings.endpoints):
            for event in e.events:
                if event in BEFORE_EVENTS:
                    self._endpoints[event] = _Endpoint(e, _target(policy, e.url, i))
                    self._limiters.setdefault(e.name, FairLimiter(MAX_INFLIGHT))
        self._client = client or CallbackClient(policy, connect_timeout_s=settings.connect_timeout_s,
                                                max_response_bytes=settings.max_response_bytes)
        self.stats = BeforeStats()

    @classmethod
    def build(cls, settings: CallbackSettings, *, clock: Clock | None = None, max_text: int = 8000,
              bots: Container[str] = ()) -> BeforeCallbacks | None:
        """The service, or None when no endpoint takes a ``before_*`` event. Raises ``BadRequest``
        naming the setting when such an endpoint's URL is refused by its form (not https, an
        internal IP literal not in ``callbacks.allow``); a host name is checked at every call."""
        if not any(ev in BEFORE_EVENTS for e in settings.endpoints for ev in e.events):
            return None
        return cls(settings, clock=clock, max_text=max_text, bots=bots)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    # ---- what is asked ---------------------------------------------------------------------
    @property
    def send(self) -> bool:
        return "before_send" in self._endpoints

    @property
    def edit(self) -> bool:
        return "before_edit" in self._endpoints

    @property
    def profile(self) -> bool:
        return "before_profile" in self._endpoints

    async def before_send(self, cmd: SendCommand, *, scheduled: bool = False) -> SendCommand:
        """``cmd`` as the endpoint lets it through (itself, or with its text and mentions
        replaced). Raises ``Refused``. Without a ``before_send`` endpoint: ``cmd``."""
        if not self.send:
            return cmd
        body: dict[str, Any] = {"sender": cmd.sender, "bot": cmd.sender in self._bots, "cid": cmd.cid,
                                "conv": cmd.conv, "kind": "direct" if cmd.to is not None else "group",
                                **cmd.content()}
        if cmd.type == FORWARD_TYPE:
            body["forward"] = list(cmd.forward)
            body["merge"] = cmd.merge
        if scheduled:
            body["scheduled"] = True
        answer = await self._ask("before_send", cmd.sender, body)
        if not isinstance(answer, Replace):
            return cmd
        if cmd.text is None or answer.text is None or answer.name is not None or answer.status is not None \
                or (answer.mentions is not None and not set(answer.mentions) <= set(cmd.mentions)):
            return self._failed("before_send", cmd.sender, "a replace that does not fit the send", cmd)
        mentions = cmd.mentions if answer.mentions is None else tuple(m for m in cmd.mentions if m in answer.mentions)
        return SendCommand(cmd.sender, cmd.cid, cmd.to, cmd.group, cmd.type, self._text(answer.text), cmd.data, mentions,
                           cmd.reply_to, cmd.forward, cmd.merge, cmd.thread)

    async def before_edit(self, uid: str, device: str | None, message: StoredMessage, text: str) -> str:
        """The text the edit of ``message`` goes on with. Raises ``Refused``."""
        if not self.edit:
            return text
        body: dict[str, Any] = {"sender": uid, "conv": message.conv,
                                "kind": "group" if message.conv.startswith("g:") else "direct",
                                "type": message.type, "message": message.id, "text": text}
        if device:
            body["device"] = device
        if message.mentions:
            body["mentions"] = list(message.mentions)
        answer = await self._ask("before_edit", uid, body)
        if not isinstance(answer, Replace):
            return text
        if answer.text is None or answer.mentions is not None or answer.name is not None or answer.status is not None:
            return self._failed("before_edit", uid, "a replace that does not fit the edit", text)
        return self._text(answer.text)

    def _text(self, text: str) -> str:
        """A replaced text, checked as the router checks a client's (the sender is told)."""
        if len(text) > self._max_text:
            msg = f"the operator's replacement text is {len(text)} characters; the limit is {self._max_text}"
            raise TooLarge(msg)
        if "\x00" in text:
            msg = "the operator's replacement text holds U+0000 (NUL)"
            raise BadRequest(msg)
        return text

    async def before_profile(self, uid: str, device: str | None, *, name: str | None, avatar: str | None,
                             status: str | None) -> tuple[str | None, str | None]:
        """The name and status the change goes on with (a replace changes only fields the
        change sets). Raises ``Refused``."""
        if not self.profile:
            return name, status
        body: dict[str, Any] = {"sender": uid}
        if device:
            body["device"] = device
        for key, value in (("name", name), ("avatar", avatar), ("status", status)):
            if value is not None:
                body[key] = value
        answer = await self._ask("before_profile", uid, body)
        if not isinstance(answer, Replace):
            return name, status
        if answer.text is not None or answer.mentions is not None or (answer.name is None and answer.status is None) \
                or (answer.name is not None and name is None) or (answer.status is not None and status is None):
            return self._failed("before_profile", uid, "a replace that does not fit the change", (name, status))
        return (name if answer.name is None else answer.name), (status if answer.status is None else answer.status)

    # ---- the request -----------------------------------------------------------------------
    async def _ask(self, event: str, sender: str, fields: dict[str, Any]) -> Answer | None:
        """The endpoint's answer (None: a failure whose policy is to allow). Raises ``Refused``
        (a refusal, or a failure whose policy is to refuse)."""
        endpoint = self._endpoints[event]
        e = endpoint.settings
        now = self._clock.now_ms()
        event_id = new_ulid(now)
        body = json.dumps({"event": event, "id": event_id, "ts": now, **fields},
                          separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "imgate-callbacks",
                   SIGNATURE_HEADER: sign(e.secret, body, now // 1000), EVENT_ID_HEADER: event_id,
                   EVENT_HEADER: event}
        self.stats.calls += 1
        try:
            async with asyncio.timeout(e.timeout_s), self._limiters[e.name].slot(sender):
                status, raw = await self._client.post(endpoint.target, body, headers)
            answer = parse_answer(status, raw, self._settings.max_response_bytes)
        except _FAILURES as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            return self._failed(event, sender, reason, None)
        if isinstance(answer, Refuse):
            self.stats.refused += 1
            raise Refused(answer.message or f"refused by the operator ({answer.code})", reason=answer.code)
        if isinstance(answer, Replace):
            self.stats.replaced += 1
        else:
            self.stats.allowed += 1
        return answer

    def _failed(self, event: str, sender: str, why: str, allowed: _T) -> _T:
        """No valid answer: the endpoint's policy (``allowed`` goes on, or ``Refused``)."""
        e = self._endpoints[event].settings
        self.stats.failures += 1
        log.warning("callback %s (%s) for %s: %s; on_failure=%s", event, e.name, sender, why, e.on_failure)
        if e.on_failure == "refuse":
            msg = "the operator's check is unavailable: try again later"
            raise Refused(msg, reason=UNAVAILABLE_REASON)
        return allowed


def check_urls(settings: CallbackSettings) -> None:
    """Every endpoint's URL by its form, before and after ones alike (at start-up, in every role:
    ``BadRequest`` naming ``callbacks.endpoints[N].url``, one line from the command line)."""
    policy = OutboundPolicy(allow_http=settings.allow_http, allow=settings.allow, noun="callback")
    for i, e in enumerate(settings.endpoints):
        _target(policy, e.url, i)


def _target(policy: OutboundPolicy, url: str, index: int) -> OutboundUrl:
    """An endpoint's URL checked by its form, and an IP literal by its address (a host name is
    checked at each connection). Raises ``BadRequest`` naming the setting."""
    import ipaddress

    try:
        target = policy.parse(url)
        try:
            literal = ipaddress.ip_address(target.host)
        except ValueError:
            literal = None
        if literal is not None and not policy.address_allowed(literal):
            msg = "a callback target must be a public host (or one callbacks.allow lists)"
            raise TargetRefused(msg)
    except TargetRefused as exc:
        msg = f"callbacks.endpoints[{index}].url: {exc}"
        raise BadRequest(msg) from None
    return target
