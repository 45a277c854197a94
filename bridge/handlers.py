"""Executes routed commands against the services and renders what to publish.

This is the boundary where service errors (ImError) become acks and JSON-RPC errors; anything
else is logged and answered with ``internal`` so the client retries with the same cid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from bridge.router import (
    APP_CODES,
    Command,
    Ignore,
    PresenceUpdate,
    Publish,
    Reply,
    Rpc,
    Send,
    Topics,
    Typing,
    ack_error,
    rpc_error,
)
from bridge.wire import (
    ConversationsParams,
    GroupCreateParams,
    GroupMembersParams,
    GroupParams,
    GroupRoleParams,
    HistoryParams,
    NotificationsParams,
    PresenceParams,
    PushTargetParams,
    ReadParams,
    RecallParams,
    SearchParams,
    SettingsParams,
    dumps,
    render_message,
)
from services.conversations.groups import GroupChange, GroupInfo, GroupService
from services.conversations.service import ConversationService
from services.errors import INTERNAL_ERROR, ErrorCode, ImError
from services.ids import Clock, SystemClock
from services.messages.service import MessageService
from services.notifications.service import DeviceDelivery, NotificationService
from services.presence.service import PresenceService
from services.push.service import PushService
from services.search.service import SearchService

log = logging.getLogger("imgate.bridge")


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


class Dispatcher:
    def __init__(self, topics: Topics, *, messages: MessageService, conversations: ConversationService,
                 presence: PresenceService, groups: GroupService, clock: Clock | None = None,
                 group_receipts_max: int = 20,
                 notifications: NotificationService | None = None, push: PushService | None = None,
                 search: SearchService | None = None) -> None:
        self.topics = topics
        self._search = search
        self._push = push
        self._notifications = notifications
        self.stats = BridgeStats()
        self._group_receipts_max = group_receipts_max
        self._clock = clock or SystemClock()
        self._messages = messages
        self._conversations = conversations
        self._presence = presence
        self._groups = groups

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
                await self._presence.record(cmd.uid, cmd.device, online=cmd.state.online,
                                            platform=cmd.state.platform, ts=ts)
                if cmd.state.online and cmd.state.persistent and self._notifications is not None:
                    # A device came back on its persistent session (its subscriptions are there
                    # already): hand it what was sent while it was away. Clean sessions pull with
                    # the ``notifications`` RPC once subscribed.
                    deliveries: list[DeviceDelivery] = []
                    while len(deliveries) < 100 and (d := await self._notifications.claim(cmd.uid, cmd.device)):
                        deliveries.append(d)
                    return self.notification_publishes(deliveries)
            except Exception:
                log.exception("could not record presence of %s/%s", cmd.uid, cmd.device)
            return []
        if isinstance(cmd, Typing):
            return await self._typing_event(cmd)
        if isinstance(cmd, Ignore):
            log.info("ignored: %s", cmd.reason)
        return []

    async def _typing_event(self, cmd: Typing) -> list[Publish]:
        try:
            if not await self._conversations.is_current_member(cmd.conv, cmd.uid):
                return []
            members = await self._conversations.members(cmd.conv)
        except Exception:
            log.exception("typing event of %s failed", cmd.uid)
            return []
        body = dumps({"type": "typing", "conv": cmd.conv, "from": cmd.uid})
        return [Publish(self.topics.inbox(m, "event"), body, qos=0) for m in members if m != cmd.uid]

    async def _send(self, cmd: Send) -> list[Publish]:
        c = cmd.command
        try:
            result = await self._messages.send(c)
        except ImError as exc:
            self.stats.send_errors += 1
            return [ack_error(self.topics, c.sender, c.cid, exc.code, exc.message)]
        except Exception:
            log.exception("send from %s (cid %r) failed", c.sender, c.cid)
            self.stats.send_errors += 1
            return [ack_error(self.topics, c.sender, c.cid, ErrorCode.INTERNAL,
                              "internal error: retry with the same cid")]
        m = result.message
        if result.created:
            self.stats.sends += 1
        else:
            self.stats.retries += 1
        out: list[Publish] = []
        if result.created:  # a retried send is acked again, never delivered twice
            rendered = render_message(m)
            body = dumps(rendered)
            flagged = dumps({**rendered, "mentioned": True}) if m.mentions else body
            out.extend(Publish(self.topics.inbox(uid, "msg"), flagged if uid in m.mentions else body)
                       for uid in result.recipients)
        out.append(Publish(self.topics.inbox(c.sender, "ack"),
                           dumps({"cid": c.cid, "id": m.id, "conv": m.conv, "seq": m.seq, "ts": m.ts})))
        return out

    async def _rpc(self, cmd: Rpc) -> list[Publish]:
        self.stats.rpcs += 1
        try:
            result, extra = await self._call(cmd.uid, cmd.method, cmd.params, cmd.device)
        except ImError as exc:
            self.stats.rpc_errors += 1
            if not cmd.respond:
                log.info("%s notification from %s failed: %s", cmd.method, cmd.uid, exc.message)
                return []
            return [rpc_error(self.topics, cmd.uid, cmd.id, APP_CODES[exc.code], exc.message, exc.code,
                              reply_to=cmd.reply_to)]
        except Exception:
            self.stats.rpc_errors += 1
            log.exception("rpc %s from %s failed", cmd.method, cmd.uid)
            if not cmd.respond:
                return []
            return [rpc_error(self.topics, cmd.uid, cmd.id, INTERNAL_ERROR, "internal error", ErrorCode.INTERNAL,
                              reply_to=cmd.reply_to)]
        if not cmd.respond:
            return extra
        reply = Publish(self.topics.inbox(cmd.uid, "rpc"), dumps({"jsonrpc": "2.0", "id": cmd.id, "result": result}))
        if cmd.reply_to is not None:
            reply = cmd.reply_to.apply(reply)
        return [reply, *extra]

    async def _call(self, uid: str, method: str, params: BaseModel, device: str | None = None
                    ) -> tuple[Any, list[Publish]]:
        if isinstance(params, HistoryParams):
            page = await self._messages.history(uid, params.conv, after_seq=params.after_seq,
                                                before_seq=params.before_seq, limit=params.limit)
            return {"messages": [render_message(m) for m in page.messages], "has_more": page.has_more}, []
        if isinstance(params, ConversationsParams):
            items, cursor = await self._conversations.list_for(uid, params.limit, params.cursor)
            last = await self._messages.by_ids([i.last_msg_id for i in items if i.last_msg_id])
            rendered = [
                {"conv": i.conv, "kind": i.kind, "peer": i.peer, "name": i.name or None, "muted": i.muted,
                 "pinned": i.pinned,
                 "last": render_message(last[i.last_msg_id]) if i.last_msg_id in last else None,
                 "last_seq": i.last_seq, "read_seq": i.read_seq, "unread": i.unread}
                for i in items
            ]
            return {"items": rendered, "next_cursor": cursor}, []
        if isinstance(params, ReadParams):
            r = await self._conversations.mark_read(uid, params.conv, params.seq)
            events: list[Publish] = []
            if r.advanced:
                # The peers' receipt and the user's other devices' unread sync; in a group larger
                # than group_receipts_max, only the latter.
                body = dumps({"type": "read", "conv": r.conv, "from": uid, "seq": r.read_seq})
                small = r.conv.startswith("d:") or len(r.members) <= self._group_receipts_max
                to = r.members if small else (uid,)
                events = [Publish(self.topics.inbox(member, "event"), body) for member in to]
            return {"conv": r.conv, "read_seq": r.read_seq, "unread": r.unread}, events
        if isinstance(params, PresenceParams):
            found = await self._presence.lookup(list(dict.fromkeys(params.uids)))
            return {"presence": {
                uid_: {"online": any(d.online for d in devices),
                       "devices": [{"device": d.device, "online": d.online, "platform": d.platform, "ts": d.ts}
                                   for d in devices]}
                for uid_, devices in found.items()
            }}, []
        if isinstance(params, (GroupCreateParams, GroupMembersParams, GroupParams)) and method != "group.info":
            if isinstance(params, GroupCreateParams):
                change = await self._groups.create(uid, params.name, params.members)
            elif isinstance(params, GroupMembersParams):
                act = self._groups.add if method == "group.add" else self._groups.remove
                change = await act(uid, params.gid, params.members)
            else:
                change = await self._groups.leave(uid, params.gid)
            return ({"gid": change.gid, "conv": change.conv, "seq": change.event.seq, "members": list(change.members)},
                    self._member_events(change))
        if isinstance(params, GroupParams):
            return self._render_group(await self._groups.info(uid, params.gid)), []
        if isinstance(params, PushTargetParams):
            if self._push is None:
                msg = "push is not available"
                raise ImError(msg, ErrorCode.FORBIDDEN)
            if method == "push.register":
                await self._push.register(uid, params.platform, params.token)
            else:
                await self._push.unregister(uid, params.platform, params.token)
            return {"platform": params.platform, "registered": method == "push.register"}, []
        if isinstance(params, NotificationsParams):
            if self._notifications is None:
                return {"notifications": []}, []
            assert device is not None  # the router only routes notifications from a device topic
            delivery = await self._notifications.claim(uid, device)
            notes = [{"id": n.id, "type": "system", "body": n.body, "ts": n.ts}
                     for n in (delivery.notifications if delivery else ())]
            return {"notifications": notes}, []
        if isinstance(params, SearchParams):
            if self._search is None:
                msg = "search is not available"
                raise ImError(msg, ErrorCode.FORBIDDEN)
            hits = await self._search.search(uid, params.q, conv=params.conv, sender=params.sender,
                                             since=params.since, until=params.until, limit=params.limit)
            return {"messages": [{"id": h.id, "conv": h.conv, "seq": h.seq, "from": h.sender, "ts": h.ts,
                                  "text": h.text} for h in hits]}, []
        if isinstance(params, RecallParams):
            tomb, members = await self._messages.recall(uid, params.id)
            body = dumps({"type": "recall", "conv": tomb.conv, "id": tomb.id, "seq": tomb.seq, "by": uid})
            return ({"id": tomb.id, "conv": tomb.conv, "seq": tomb.seq},
                    [Publish(self.topics.inbox(m, "event"), body) for m in members])
        if isinstance(params, SettingsParams):
            muted, pinned = await self._conversations.set_flags(uid, params.conv, muted=params.muted,
                                                                pinned=params.pinned)
            result = {"conv": params.conv, "muted": muted, "pinned": pinned}
            return result, [Publish(self.topics.inbox(uid, "event"), dumps({"type": "settings", **result}))]
        if isinstance(params, GroupRoleParams):
            return self._render_group(await self._groups.set_role(uid, params.gid, params.uid, params.role)), []
        msg = f"no handler for {method}"
        raise AssertionError(msg)

    def notification_publishes(self, deliveries: list[DeviceDelivery]) -> list[Publish]:
        return [Publish(self.topics.device_notify(d.uid, d.device),
                        dumps({"id": n.id, "type": "system", "body": n.body, "ts": n.ts}))
                for d in deliveries for n in d.notifications]

    def _member_events(self, change: GroupChange) -> list[Publish]:
        """The ``member`` event (it carries the change's seq) to everyone concerned."""
        e = change.event
        body = dumps({"type": "member", "conv": e.conv, "seq": e.seq, "id": e.id, "from": e.sender, "ts": e.ts,
                      **(e.data or {})})
        return [Publish(self.topics.inbox(uid, "event"), body) for uid in change.notify]

    @staticmethod
    def _render_group(info: GroupInfo) -> dict[str, Any]:
        return {"gid": info.gid, "conv": info.conv, "name": info.name, "owner": info.owner,
                "members": [{"uid": u, "role": r} for u, r in info.members]}
