"""The admin API's bot routes (docs/bots.md): create a bot and set its message bucket, send as
it, read its conversations. Part of :func:`imgate.admin.build_admin_app`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from fastapi import FastAPI, Path, Query
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from imgate.admin import MAX_INT, AdminContext, _Body
from services.errors import ErrorCode, ImError
from services.ids import UID_RE
from services.users.bots import BotLimits

_UID = UID_RE.pattern
_RATE = Field(None, gt=0, le=100_000, description="messages per second; none: limits.bot_messages_per_s")
_BURST = Field(None, ge=1, le=100_000, description="the bucket's size; none: limits.bot_messages_burst")


class NewBot(_Body):
    uid: str = Field(pattern=_UID, description="1-64 characters of A-Z a-z 0-9 _ -")
    name: str = Field("", max_length=128)
    messages_per_s: float | None = _RATE
    messages_burst: int | None = _BURST


class BotLimitsIn(_Body):
    messages_per_s: float | None = _RATE
    messages_burst: int | None = _BURST


class Bot(BaseModel):
    uid: str
    name: str
    disabled: bool
    created_at: int
    kind: str
    messages_per_s: float | None
    messages_burst: int | None


class BotMessage(_Body):
    """A send as protocol §3 has it, with ``conv`` as another way to say where."""

    cid: str = Field(min_length=1, max_length=64, description="the bot's own id of the send: a repeat is "
                                                                "answered with the stored message, never sent twice")
    conv: str | None = Field(None, max_length=140, pattern=r"^(d|g):[A-Za-z0-9_:-]+$",
                             description="a conversation of the bot's (d:a:b or g:gid); or give to / group")
    to: str | None = Field(None, pattern=_UID, description="a 1:1 with this user")
    group: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="a group the bot is in")
    type: Literal["text", "custom", "image", "file", "audio", "video"] = "text"
    text: str | None = None
    data: dict[str, Any] | None = None
    attachment: dict[str, Any] | None = None
    mentions: list[str] | None = Field(None, max_length=100)
    reply_to: str | None = None
    thread: str | None = None


class BotAck(BaseModel):
    cid: str
    id: str
    conv: str
    seq: int
    ts: int
    thread: str | None = None
    tseq: int | None = None
    expires_at: int | None = None
    mentions_dropped: list[str] | None = None
    created: bool = Field(description="false: a repeated cid, answered with the message stored then")
    live: bool = Field(description="delivered to the devices online now (false: they get it when they sync)")


def _where(uid: str, body: BotMessage) -> dict[str, Any]:
    """The wire's send (``to`` or ``group``) of ``body``."""
    wire = body.model_dump(exclude_none=True, exclude={"conv"})
    if body.conv is None:
        return wire
    if body.to is not None or body.group is not None:
        raise ImError("give conv, or to / group, not both", ErrorCode.BAD_REQUEST)
    kind, _, rest = body.conv.partition(":")
    if kind == "g":
        return {**wire, "group": rest}
    a, _, b = rest.partition(":")
    if uid not in (a, b) or not a or not b:
        raise ImError(f"conversation {body.conv!r} not found", ErrorCode.NOT_FOUND)
    return {**wire, "to": b if a == uid else a}


def bot_routes(app: FastAPI, ctx: AdminContext, guarded: list[Depends]) -> None:
    tags: list[str | Any] = ["bots"]

    @app.post("/v1/bots", status_code=201, response_model=Bot, dependencies=guarded, tags=tags)
    async def create_bot(body: NewBot) -> Bot:
        """Create a bot: a user of kind `bot`. It gets tokens as a user does (`POST
        /v1/users/{uid}/tokens`) and connects like a device, or acts through the routes below."""
        info = await ctx.users.add_user(body.uid, body.name, kind="bot",
                                        limits=BotLimits(body.messages_per_s, body.messages_burst))
        return Bot(**asdict(info))

    @app.get("/v1/bots/{uid}", response_model=Bot, dependencies=guarded, tags=tags)
    async def get_bot(uid: str) -> Bot:
        return Bot(**asdict(await ctx.users.get_bot(uid)))

    @app.put("/v1/bots/{uid}/limits", response_model=Bot, dependencies=guarded, tags=tags)
    async def set_bot_limits(uid: str, body: BotLimitsIn) -> Bot:
        """Set the bot's message bucket (a field left out: the default). Other processes apply it
        within `limits.bots_refresh_s`."""
        info = await ctx.users.set_bot_limits(uid, BotLimits(body.messages_per_s, body.messages_burst))
        return Bot(**asdict(info))

    @app.post("/v1/bots/{uid}/messages", status_code=201, response_model=BotAck, dependencies=guarded, tags=tags,
              responses={200: {"model": BotAck, "description": "a repeated cid: the message stored then"}})
    async def send_as_bot(uid: str, body: BotMessage) -> JSONResponse:
        """Send as the bot, under the rules of any send (membership, blocks, the contacts policy,
        the bot's message bucket). Answered once stored (201; a repeated `cid` 200 with the same
        message); delivered to the recipients' devices online now."""
        ack, created = await ctx.bots.send(uid, _where(uid, body))
        out = BotAck(**ack, created=created, live=ctx.bots.live)
        return JSONResponse(out.model_dump(exclude_none=True), status_code=201 if created else 200)

    @app.get("/v1/bots/{uid}/conversations", dependencies=guarded, tags=tags)
    async def bot_conversations(
        uid: str,
        limit: int = Query(50, ge=1, le=200),
        cursor: str | None = Query(None, max_length=300, description="the previous page's `next_cursor`"),
    ) -> Any:
        """The bot's conversations, most recently active first, as the `conversations` RPC
        answers them (protocol §5)."""
        return await ctx.bots.conversations(uid, limit, cursor)

    @app.get("/v1/bots/{uid}/conversations/{conv}/messages", dependencies=guarded, tags=tags)
    async def bot_history(
        uid: str,
        conv: str = Path(min_length=1, max_length=140),
        after_seq: int | None = Query(None, ge=0, le=MAX_INT),
        before_seq: int | None = Query(None, ge=1, le=MAX_INT),
        limit: int = Query(50, ge=1, le=200),
    ) -> Any:
        """A page of a conversation of the bot's, inside its window, as the `history` RPC
        answers it (not a conversation of the bot's: 404 not_found)."""
        return await ctx.bots.history(uid, conv, after_seq=after_seq, before_seq=before_seq, limit=limit)
