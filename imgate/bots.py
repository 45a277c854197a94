"""What the admin API does as a bot (docs/bots.md): send as the bot, list its conversations, read
their history. Each goes the way a device's request goes: a send through the router (the
wire's shapes and sizes), the bot's message bucket, the message service (membership, blocks,
the contacts policy, idempotency on the cid), then its deliveries to the recipients' devices;
the reads through the RPC methods ``conversations`` and ``history`` (the bot's windows)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.handlers import Dispatcher, send_ack
from bridge.outbound import Publish
from bridge.ratelimit import Throttle
from bridge.router import Reply, Router, Send
from bridge.wire import ConversationsParams, HistoryParams
from services.errors import ErrorCode, ImError, NotFound, RateLimited
from services.users.service import UserService

log = logging.getLogger("imgate.bots")

Publisher = Callable[[list[Publish]], Awaitable[None]]


class BotActions:
    """``publish``: hands deliveries to the devices (the bridge's transport in ``imgate run``, an
    AMQP publisher in ``imgate api``); None: stored only, devices get it when they sync."""

    def __init__(self, users: UserService, dispatcher: Dispatcher, router: Router, throttle: Throttle,
                 publish: Publisher | None) -> None:
        self._users = users
        self._dispatcher = dispatcher
        self._router = router
        self._throttle = throttle
        self._publish = publish

    @property
    def live(self) -> bool:
        """Deliveries reach the devices online now (else they get them when they next sync)."""
        return self._publish is not None

    async def _bot(self, uid: str) -> None:
        bot = await self._users.get_bot(uid)
        if bot.disabled:
            msg = f"bot {uid!r} is disabled"
            raise NotFound(msg)

    async def send(self, uid: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Send ``body`` (a send as protocol §3 has it: ``cid``, ``to`` or ``group``, ``type``,
        ``text``/``data``/``attachment``…) as the bot ``uid``. Returns the ack (after the durable
        store) and whether the message was new (a repeated cid is answered with the stored one).

        Raises:
            NotFound: no such bot (or disabled), or what a send raises. RateLimited: over the
                bot's bucket. BadRequest / TooLarge: the router's checks.
        """
        await self._bot(uid)
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        cmd = self._router.route(f"{self._router.topics.prefix}/{uid}/out/msg", payload)
        if isinstance(cmd, Reply):  # bad input, as a device would be told it
            raise _error_of(cmd)
        if not isinstance(cmd, Send) or cmd.at is not None:
            msg = "not a send"
            raise ImError(msg, ErrorCode.BAD_REQUEST)
        wait = self._throttle.message_wait(uid)
        if wait:
            msg = f"too many messages: retry in {wait} ms"
            raise RateLimited(msg, retry_after_ms=wait)
        if self._dispatcher.before is not None and self._dispatcher.gated(cmd):
            decided = await self._dispatcher.decide(cmd)  # the operator's before_send, as for a device
            if isinstance(decided, Reply):
                raise _error_of(decided)
            assert isinstance(decided, Send)
            cmd = decided
        result = await self._dispatcher.messages.send(cmd.command)
        if result.created and self._publish is not None:
            try:
                await self._publish(self._dispatcher.deliveries(result))
            except ConnectionError:  # stored: the devices get it when they next sync
                log.warning("the deliveries of a message of bot %s are lost; devices sync it", uid, exc_info=True)
        return send_ack(cmd.command, result.message), result.created

    async def conversations(self, uid: str, limit: int, cursor: str | None) -> Any:
        """The bot's conversations, as the ``conversations`` RPC answers them."""
        await self._bot(uid)
        result, _ = await self._dispatcher.call(uid, "conversations", ConversationsParams(limit=limit, cursor=cursor))
        return result

    async def history(self, uid: str, conv: str, *, after_seq: int | None, before_seq: int | None,
                      limit: int) -> Any:
        """A page of a conversation of the bot's, inside its window, as the ``history`` RPC
        answers it (not a member, or never was: ``not_found``)."""
        await self._bot(uid)
        params = HistoryParams(conv=conv, after_seq=after_seq, before_seq=before_seq, limit=limit)
        result, _ = await self._dispatcher.call(uid, "history", params)
        return result


def _error_of(reply: Reply) -> ImError:
    """The error a device would have been answered with, to raise to the API's caller (a
    refusal's ``reason`` kept)."""
    error = json.loads(bytes(reply.publish.payload))["error"]
    return ImError(error.get("message") or error["code"], ErrorCode(error["code"]), reason=error.get("reason"))
