"""Executes routed commands against the services and renders what to publish.

This is the boundary where service errors (ImError) become acks and JSON-RPC errors; anything
else is logged and answered with ``internal`` so the client retries with the same cid.
"""

from __future__ import annotations

import logging
from collections.abc import Container
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel

from bridge.formats import dumps
from bridge.router import (
    Command,
    ConnectionClosed,
    Ignore,
    PresenceUpdate,
    Publish,
    Reply,
    Rpc,
    Send,
    Topics,
    Typing,
    error_reply,
)
from bridge.rpc import METHODS, Call
from bridge.scheduled import delivery_publishes, event, render_schedule, scheduled_ack
from services.attachments.service import AttachmentService
from services.blocks.service import BlockService
from services.contacts.service import ContactService
from services.conversations.service import ConversationService
from services.errors import BadRequest, ErrorCode, ImError
from services.groups.service import GroupService
from services.hooks.before import BeforeCallbacks
from services.ids import Clock, SystemClock
from services.messages.commands import SendCommand, StoredMessage
from services.messages.expiry import Expired
from services.messages.scheduled import ScheduledSends
from services.messages.service import MessageService, SendResult
from services.notifications.service import DeviceDelivery, NotificationService
from services.presence.service import PresenceService
from services.previews.extract import cache_key
from services.previews.service import Preview, PreviewJob, PreviewService
from services.profiles.service import ProfileService
from services.push.service import PushService
from services.reactions.service import ReactionService
from services.search.service import SearchService

log = logging.getLogger("imgate.bridge")
EXPIRED_PER_EVENT = 100  # message ids an ``expired`` event carries at most (a sweep's pass sends several)


@dataclass(slots=True)
class BridgeStats:
    """Counters for /metrics."""

    commands: int = 0
    sends: int = 0  # messages stored (acks with an id)
    retries: int = 0  # sends answered from an earlier store
    send_errors: int = 0  # error acks
    rpcs: int = 0
    rpc_errors: int = 0
    deliveries: int = 0  # publishes handed to the broker


def send_ack(c: SendCommand, m: StoredMessage) -> dict[str, Any]:
    """The ack of a stored send (protocol §3): its id, conv, seq and ts, and what the sender needs."""
    ack: dict[str, Any] = {"cid": c.cid, "id": m.id, "conv": m.conv, "seq": m.seq, "ts": m.ts}
    if m.thread is not None:  # a thread reply: its thread and place in it
        ack |= {"thread": m.thread, "tseq": m.tseq}
    if m.expires_at is not None:  # disappearing: the sender's copy goes then too
        ack["expires_at"] = m.expires_at
    if c.mentions:  # the mentions of non-members were dropped: the sender is told which
        dropped = [u for u in c.mentions if u not in m.mentions]
        if dropped:
            ack["mentions_dropped"] = dropped
    return ack


class Dispatcher:
    def __init__(self, topics: Topics, *, messages: MessageService, conversations: ConversationService,
                 presence: PresenceService, groups: GroupService, reactions: ReactionService, blocks: BlockService,
                 profiles: ProfileService, contacts: ContactService, attachments: AttachmentService,
                 clock: Clock | None = None,
                 group_receipts_max: int = 20,
                 notifications: NotificationService | None = None, push: PushService | None = None,
                 search: SearchService | None = None, announce_presence: bool = False,
                 previews: PreviewService | None = None, scheduled: ScheduledSends | None = None,
                 bots: Container[str] = (), before: BeforeCallbacks | None = None) -> None:
        """``announce_presence``: publish each device's presence on ``presence/{uid}/{device}``
        (cluster mode; the embedded broker announces presence itself). ``previews``: link
        previews are on (a text message's link is previewed once its deliveries are out).
        ``before``: the operator's ``before_*`` callbacks (None: none configured; the bridge then
        never asks ``gated``)."""
        # What the RPC handlers (bridge.rpc) use: the dispatcher is their RpcContext.
        self.topics = topics
        self.messages = messages
        self.conversations = conversations
        self.presence = presence
        self.groups = groups
        self.notifications = notifications
        self.push = push
        self.search = search
        self.reactions = reactions
        self.blocks = blocks
        self.profiles = profiles
        self.attachments = attachments
        self.contacts = contacts
        self.group_receipts_max = group_receipts_max
        self.announce_presence = announce_presence
        self.previews = previews
        self.scheduled = scheduled  # scheduled sends (None: a send with 'at' is unavailable)
        self.bots = bots  # the bots this process knows (UserService.bots): their messages say "bot": true
        self._previews_due: dict[int, PreviewJob] = {}  # id(send command) -> its preview, once published
        self.before = before
        self.stats = BridgeStats()
        self._clock = clock or SystemClock()

    # ---- the before_* callbacks (docs/callbacks.md): asked before a command reaches its lane ----
    def gated(self, cmd: Command) -> bool:
        """Whether ``cmd`` waits for the operator's answer (``before`` is set)."""
        b = self.before
        assert b is not None
        if isinstance(cmd, Send):
            return b.send and cmd.at is None  # a scheduled send is asked at its delivery
        if isinstance(cmd, Rpc):
            return (cmd.method == "edit" and b.edit) or (cmd.method == "profile.set" and b.profile)
        return False

    async def decide(self, cmd: Command) -> Command:
        """``cmd`` as the operator's ``before_*`` endpoint lets it through: itself, the command
        with the replacement, or the refusal's error reply. Never raises."""
        b = self.before
        assert b is not None
        try:
            if isinstance(cmd, Send):
                c = cmd.command
                if await self.messages.is_stored(c.sender, c.cid):
                    return cmd  # a retry of a stored send: acked as it was, the endpoint not asked again
                checked = await b.before_send(c)
                return cmd if checked is c else Send(checked, cmd.lane_key)
            if isinstance(cmd, Rpc) and cmd.method == "edit":
                params: Any = cmd.params
                m = (await self.messages.by_ids([params.id])).get(params.id)
                if m is None or m.sender != cmd.uid:
                    return cmd  # the edit fails as it would have (not found, not the sender's)
                text = await b.before_edit(cmd.uid, cmd.device, m, params.text)
                return cmd if text == params.text else replace(cmd, params=params.model_copy(update={"text": text}))
            if isinstance(cmd, Rpc) and cmd.method == "profile.set":
                params = cmd.params
                name, status = await b.before_profile(cmd.uid, cmd.device, name=params.name, avatar=params.avatar,
                                                      status=params.status)
                if (name, status) == (params.name, params.status):
                    return cmd
                try:  # the replacement is checked as the client's own change is
                    checked_params = type(params).model_validate(
                        {**params.model_dump(exclude_none=True), "name": name, "status": status})
                except ValueError:
                    msg = "the operator's replacement of the profile change is not valid"
                    raise BadRequest(msg) from None
                return replace(cmd, params=checked_params)
        except Exception as exc:
            if not isinstance(exc, ImError):
                log.error("before_* callback of %r failed", type(cmd).__name__, exc_info=exc)
                exc = ImError("internal error: retry", ErrorCode.INTERNAL)
            if isinstance(cmd, Send):
                return Reply(error_reply(self.topics, cmd.command.sender, exc, cid=cmd.command.cid), cmd.lane_key)
            if isinstance(cmd, Rpc):
                if not cmd.respond:
                    return Ignore(f"{cmd.method} notification from {cmd.uid} refused: {exc.message}", cmd.lane_key)
                return Reply(error_reply(self.topics, cmd.uid, exc, rpc=True, rpc_id=cmd.id, reply_to=cmd.reply_to),
                             cmd.lane_key)
        return cmd

    async def handle(self, cmd: Command) -> list[Publish]:
        """Execute one command; never raises (errors become replies)."""
        self.stats.commands += 1
        pubs = await self._handle(cmd)
        self.stats.deliveries += len(pubs)
        return pubs

    async def _handle(self, cmd: Command) -> list[Publish]:
        if isinstance(cmd, Reply):
            if cmd.publish.topic.endswith("/in/ack"):
                self.stats.send_errors += 1
            else:
                self.stats.rpc_errors += 1
            return [cmd.publish]
        if isinstance(cmd, Send):
            return await self._send(cmd)
        if isinstance(cmd, Rpc):
            return await self._rpc(cmd)
        if isinstance(cmd, PresenceUpdate):
            try:
                # Presence times are the server's: a client's will cannot date itself in the future
                # (which would pin its presence), and one without a time gets now.
                now = self._clock.now_ms()
                ts = min(cmd.state.ts, now) if cmd.state.ts > 0 else now
                conn = cmd.state.conn if self.announce_presence else ""
                stored = await self.presence.record(cmd.uid, cmd.device, online=cmd.state.online,
                                                    platform=cmd.state.platform, ts=ts, conn=conn)
                if self.announce_presence:
                    return [self._presence_publish(cmd.uid, cmd.device, cmd.state.online, cmd.state.platform, ts)] \
                        if stored else []
                if cmd.state.online and cmd.state.persistent and self.notifications is not None:
                    # A device came back on its persistent session (its subscriptions are there
                    # already): hand it what was sent while it was away. Clean sessions pull with
                    # the ``notifications`` RPC once subscribed.
                    deliveries: list[DeviceDelivery] = []
                    while len(deliveries) < 100 and (d := await self.notifications.claim(cmd.uid, cmd.device)):
                        deliveries.append(d)
                    return self.notification_publishes(deliveries)
            except Exception:
                log.exception("could not record presence of %s/%s", cmd.uid, cmd.device)
            return []
        if isinstance(cmd, ConnectionClosed):
            try:
                gone = await self.presence.connection_closed(cmd.conn, min(cmd.ts, self._clock.now_ms()))
            except Exception:
                log.exception("could not record the close of connection %s", cmd.conn)
                return []
            return [self._presence_publish(d.uid, d.device, False, d.platform, d.ts) for d in gone]
        if isinstance(cmd, Typing):
            return await self._typing_event(cmd)
        if isinstance(cmd, Ignore):
            log.info("ignored: %s", cmd.reason)
        return []

    @staticmethod
    def _presence_publish(uid: str, device: str, online: bool, platform: str, ts: int) -> Publish:
        """Presence as the embedded broker publishes it (protocol §5), for cluster mode."""
        body: dict[str, Any] = {"online": online, "ts": ts}
        if online:
            body["platform"] = platform
        return Publish(f"presence/{uid}/{device}", dumps(body))

    async def _typing_event(self, cmd: Typing) -> list[Publish]:
        try:
            if not await self.conversations.is_current_member(cmd.conv, cmd.uid) \
                    or await self.blocks.blocked_in(cmd.uid, cmd.conv):  # a blocker is not told
                return []
            members = await self.conversations.members(cmd.conv)
        except Exception:
            log.exception("typing event of %s failed", cmd.uid)
            return []
        body = dumps({"type": "typing", "conv": cmd.conv, "from": cmd.uid})
        return [Publish(self.topics.inbox(m, "event"), body, qos=0) for m in members if m != cmd.uid]

    async def _send(self, cmd: Send) -> list[Publish]:
        if cmd.at is not None:
            return await self._schedule(cmd, cmd.at)
        c = cmd.command
        try:
            result = await self.messages.send(c)
        except Exception as exc:  # noqa: BLE001 (_send_failed logs what is not the service's own error)
            return self._send_failed(c, exc, "send")
        m = result.message
        if result.created:
            self.stats.sends += 1
        else:
            self.stats.retries += 1
        out = self.deliveries(result)
        out.append(Publish(self.topics.inbox(c.sender, "ack"), dumps(send_ack(c, m))))
        if result.created and self.previews is not None and m.type == "text" and m.text and "https://" in m.text:
            job = self.previews.job(m.id, m.conv, m.seq, m.sender, m.text, result.recipients)
            if job is not None:
                self._previews_due[id(cmd)] = job  # requested by published(), after the message
        return out

    def deliveries(self, result: SendResult) -> list[Publish]:
        """A stored send's copies to its recipients (none for a retry: never delivered twice)."""
        return delivery_publishes(self.topics, [result], self.bots) if result.created else []

    def _send_failed(self, c: SendCommand, exc: Exception, what: str) -> list[Publish]:
        """The error ack of a send (or a scheduling) that failed: the service's own error as it
        said it; anything else logged, and ``internal`` (the client retries with the same cid)."""
        self.stats.send_errors += 1
        if not isinstance(exc, ImError):
            log.error("%s from %s (cid %r) failed", what, c.sender, c.cid, exc_info=exc)
            exc = ImError("internal error: retry with the same cid", ErrorCode.INTERNAL)
        return [error_reply(self.topics, c.sender, exc, cid=c.cid)]

    async def _schedule(self, cmd: Send, at: int) -> list[Publish]:
        """A send with ``at``: stored as a schedule (acked once committed), sent later by the
        delivery pass; the sender's devices get the ``scheduled`` event ``add``."""
        c = cmd.command
        try:
            if self.scheduled is None:
                msg = "scheduled sends are not available here"
                raise ImError(msg, ErrorCode.UNAVAILABLE)
            schedule, created = await self.scheduled.schedule(c, at)
        except Exception as exc:  # noqa: BLE001 (_send_failed logs what is not the service's own error)
            return self._send_failed(c, exc, "scheduling a send")
        if schedule is None:  # sent already (without 'at', or scheduled and purged since): its ack again
            return await self._send(Send(c, cmd.lane_key))
        out = [Publish(self.topics.inbox(c.sender, "ack"), dumps(scheduled_ack(c.cid, schedule)))]
        if created:
            out.append(event(self.topics, c.sender, "add", {"id": schedule.id, "cid": c.cid, "conv": schedule.conv,
                                                            "at": schedule.at, "scheduled": render_schedule(schedule)}))
        return out

    async def _preview_edit(self, cmd: Rpc) -> None:
        """An edit whose text has a link: its preview (again) for the members told of the edit,
        once the edit event is out (a link unchanged is the cache's)."""
        text: str = cmd.params.text  # type: ignore[attr-defined]
        if "https://" not in text or self.previews is None:
            return
        try:
            m = (await self.messages.by_ids([cmd.params.id])).get(cmd.params.id)  # type: ignore[attr-defined]
            if m is None or m.type != "text":
                return
            job = self.previews.job(m.id, m.conv, m.seq, m.sender, m.text,
                                    await self.conversations.audience(m.conv, m.seq))
        except Exception:  # the edit is done and answered; its preview is not worth failing it
            log.exception("preview of the edit of %s failed", cmd.params.id)  # type: ignore[attr-defined]
            return
        if job is not None:
            self._previews_due[id(cmd)] = job

    def published(self, cmd: Command) -> None:
        """The bridge has published ``cmd``'s deliveries (or given up on them): its link preview,
        if any, is requested now, so the preview event always follows the message."""
        if self._previews_due:
            job = self._previews_due.pop(id(cmd), None)
            if job is not None and self.previews is not None:
                self.previews.request(job)

    async def preview_publishes(self, job: PreviewJob, preview: Preview) -> list[Publish]:
        """Store ``preview`` with the message and make its ``preview`` event to the members who
        got the message, if the message still shows that link (not recalled, nor edited to
        another link since)."""
        current = (await self.messages.by_ids([job.id])).get(job.id)
        if current is None or current.type != "text" or current.text is None:
            return []
        url = self.previews.link(current.text) if self.previews is not None else None
        if url is None or cache_key(url) != job.key:
            return []
        stored = {"url": url, "title": preview.title, "description": preview.description, "image": preview.image}
        if not await self.messages.set_preview(job.id, current.text, stored):
            return []  # recalled or edited meanwhile
        body = dumps({"type": "preview", "conv": job.conv, "id": job.id, "seq": job.seq, **stored})
        return [Publish(self.topics.inbox(uid, "event"), body) for uid in job.to]

    async def call(self, uid: str, name: str, params: BaseModel, device: str | None = None) -> tuple[Any, list[Publish]]:
        """Run the RPC method ``name`` as ``uid`` (params validated): its result and the events
        to publish. A method with ``membership`` looks the caller's up first (not a member:
        ``not_found``). Raises what the method raises."""
        method = METHODS[name]
        member = None
        if method.membership:  # registration checked that its params have a conv
            conv: str = params.conv  # type: ignore[attr-defined]
            member = await self.conversations.membership(conv, uid)
        return await method.handler(self, Call(uid, params, device, member))

    async def _rpc(self, cmd: Rpc) -> list[Publish]:
        self.stats.rpcs += 1
        try:
            result, extra = await self.call(cmd.uid, cmd.method, cmd.params, cmd.device)
        except Exception as exc:
            self.stats.rpc_errors += 1
            if not isinstance(exc, ImError):
                log.exception("rpc %s from %s failed", cmd.method, cmd.uid)
                exc = ImError("internal error", ErrorCode.INTERNAL)
            if not cmd.respond:
                log.info("%s notification from %s failed: %s", cmd.method, cmd.uid, exc.message)
                return []
            return [error_reply(self.topics, cmd.uid, exc, rpc=True, rpc_id=cmd.id, reply_to=cmd.reply_to)]
        if cmd.method == "edit" and self.previews is not None:
            await self._preview_edit(cmd)
        if not cmd.respond:
            return extra
        reply = Publish(self.topics.inbox(cmd.uid, "rpc"), dumps({"jsonrpc": "2.0", "id": cmd.id, "result": result}))
        if cmd.reply_to is not None:
            reply = cmd.reply_to.apply(reply)
        return [reply, *extra]

    async def expired_publishes(self, expired: list[Expired]) -> list[Publish]:
        """The ``expired`` events of a sweep's pass: to each current member, the messages of its
        window that expired, at most ``EXPIRED_PER_EVENT`` to an event (protocol, "Disappearing
        messages")."""
        pubs = []
        for e in expired:
            for uid, found in (await self.messages.expiry.audience(e)).items():
                for i in range(0, len(found), EXPIRED_PER_EVENT):
                    part = found[i:i + EXPIRED_PER_EVENT]
                    pubs.append(Publish(self.topics.inbox(uid, "event"), dumps({
                        "type": "expired", "conv": e.conv, "ids": [m for m, _ in part], "seqs": [q for _, q in part]})))
        return pubs

    def notification_publishes(self, deliveries: list[DeviceDelivery]) -> list[Publish]:
        return [Publish(self.topics.device_notify(d.uid, d.device),
                        dumps({"id": n.id, "type": "system", "body": n.body, "ts": n.ts}))
                for d in deliveries for n in d.notifications]
