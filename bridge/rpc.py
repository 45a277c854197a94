"""The RPC surface, declared once: each method's name, params model, handler, rate-limit class,
and whether the caller must be a member of the conversation it names.

The router takes the params model (and the device and lane rules) from here, the throttle the
rate-limit class, the dispatcher the handler. A handler gets the services through ``RpcContext``
(the dispatcher) and returns its result and the events to publish. Services are imported for
their types only: the sans-IO router imports this module and must not load the database layer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from bridge.formats import dumps
from bridge.outbound import Publish, Topics
from bridge.scheduled import event, render_schedule
from bridge.wire import (
    ContactRequestParams,
    ConversationsParams,
    EditParams,
    FileUploadParams,
    FileUrlParams,
    GroupCreateParams,
    GroupMembersParams,
    GroupParams,
    GroupRoleParams,
    GroupSettingsParams,
    HistoryParams,
    NoParams,
    NotificationsParams,
    PinnedParams,
    PinParams,
    PresenceParams,
    ProfileGetParams,
    ProfileSetParams,
    PushTargetParams,
    ReactionParams,
    ReadByParams,
    ReadParams,
    RecallParams,
    ScheduleCancelParams,
    ScheduleListParams,
    SearchParams,
    SettingsParams,
    ThreadReadParams,
    ThreadsParams,
    TtlParams,
    UserParams,
    render_message,
)
from services.errors import Unavailable

if TYPE_CHECKING:
    from services.attachments.service import AttachmentService
    from services.blocks.service import BlockService
    from services.contacts.service import ContactService
    from services.conversations.service import ConversationService, Membership
    from services.groups.service import GroupChange, GroupInfo, GroupService
    from services.messages.commands import StoredMessage
    from services.messages.scheduled import ScheduledSends
    from services.messages.service import MessageService
    from services.notifications.service import NotificationService
    from services.presence.service import PresenceService
    from services.profiles.service import ProfileInfo, ProfileService
    from services.push.service import PushService
    from services.reactions.service import ReactionService, Summary
    from services.search.service import SearchService


class Limit(StrEnum):
    """Which per-user token buckets a method takes from (``bridge.ratelimit``)."""

    RPC = "rpc"  # the general RPC bucket
    READ = "read"  # read markers: state, not requests; a bucket of their own
    SEARCH = "search"  # the RPC bucket and the search bucket
    PUSH_REGISTER = "push.register"  # the RPC bucket and the push-registration bucket
    FAN_OUT = "fan-out"  # the RPC bucket and the messages bucket: an event to every member, as a message costs
    PROFILE = "profile"  # the RPC bucket and the profile bucket: an event to every contact (there may be thousands)


class Lane(StrEnum):
    """Which bridge lane runs a call (calls on one lane keep their order)."""

    USER = "user"  # the caller's
    GROUP = "group"  # the group's (params.gid), with the group's messages


class RpcContext(Protocol):
    """What handlers use: the bridge's dispatcher provides it."""

    topics: Topics
    messages: MessageService
    conversations: ConversationService
    presence: PresenceService
    groups: GroupService
    notifications: NotificationService | None
    push: PushService | None
    search: SearchService | None
    reactions: ReactionService
    blocks: BlockService
    profiles: ProfileService
    contacts: ContactService
    attachments: AttachmentService
    group_receipts_max: int
    scheduled: ScheduledSends | None
    bots: Container[str]  # the bots this process knows (their messages and profiles say "bot": true)


P = TypeVar("P", bound=BaseModel)
P_contra = TypeVar("P_contra", bound=BaseModel, contravariant=True)


@dataclass(frozen=True, slots=True)
class Call(Generic[P]):
    """One call, validated: the caller, its params, the publishing device (on
    ``{p}/{uid}/out/rpc/{device}``) and, for a method with ``membership``, the caller's membership
    of ``params.conv`` (looked up once by the dispatcher; not a member is ``not_found``)."""

    uid: str
    params: P
    device: str | None = None
    member: Membership | None = None

    @property
    def membership(self) -> Membership:
        assert self.member is not None, "declared without membership=True"
        return self.member


Answer = tuple[Any, list[Publish]]  # the result, and the events to publish with the reply
Handler = Callable[[RpcContext, Call[Any]], Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    params: type[BaseModel]
    handler: Handler
    limit: Limit = Limit.RPC
    membership: bool = False  # params.conv must be a conversation the caller is (or was) in
    lane: Lane = Lane.USER
    own_device: bool = False  # only on {p}/{uid}/out/rpc/{device}, for that device's own data


METHODS: dict[str, Method] = {}


def method(name: str, params: type[P], *, limit: Limit = Limit.RPC, membership: bool = False, lane: Lane = Lane.USER,
           own_device: bool = False) -> Callable[[Callable[[RpcContext, Call[P]], Awaitable[Answer]]],
                                                 Callable[[RpcContext, Call[P]], Awaitable[Answer]]]:
    """Declare an RPC method (once: a second declaration of a name is a bug)."""
    def register(handler: Callable[[RpcContext, Call[P]], Awaitable[Answer]]
                 ) -> Callable[[RpcContext, Call[P]], Awaitable[Answer]]:
        assert name not in METHODS, f"RPC method {name!r} declared twice"
        assert not membership or "conv" in params.model_fields, f"{name}: membership needs a conv param"
        assert lane != Lane.GROUP or "gid" in params.model_fields, f"{name}: the group lane needs a gid param"
        METHODS[name] = Method(name, params, handler, limit, membership, lane, own_device)
        return handler
    return register


# ---- conversations and history ---------------------------------------------------------------
@method("history", HistoryParams, membership=True)
async def history(ctx: RpcContext, call: Call[HistoryParams]) -> Answer:
    p = call.params
    if p.thread is not None:
        return await _thread_history(ctx, call)
    page = await ctx.messages.history(call.membership, after_seq=p.after_seq, before_seq=p.before_seq, limit=p.limit)
    rendered = await _rendered(ctx, call.uid, page.messages, upto=call.membership.window.upto)
    return {"messages": [rendered[m.id] for m in page.messages], "has_more": page.has_more}, []


async def _rendered(ctx: RpcContext, uid: str, messages: list[StoredMessage], *, upto: int | None = None
                    ) -> dict[str, dict[str, Any]]:
    """Messages as ``uid`` sees them in history and the conversation list: with their reactions
    (``reactions``: emoji -> count; ``my_reactions``: the caller's), and ``mentioned`` when they
    mention the caller (as its delivered copy said), by id. ``upto``: a former member's window
    ends there (a root's reply count stops there too)."""
    sums: dict[str, Summary] = await ctx.reactions.summaries([m.id for m in messages], uid)
    mentions = await ctx.conversations.mentioned([(m.conv, m.seq) for m in messages if m.mentions], uid)
    replies = await ctx.messages.threads.counts([m.id for m in messages if m.thread is None], upto)
    out: dict[str, dict[str, Any]] = {}
    for m in messages:
        body = render_message(m, ctx.bots)
        if (m.conv, m.seq) in mentions:
            body["mentioned"] = True
        if m.id in replies:  # a thread's root: how many replies it has
            body["replies"] = replies[m.id]
        if (s := sums.get(m.id)) is not None:
            body["reactions"] = s.counts
            if s.mine:
                body["my_reactions"] = s.mine
        out[m.id] = body
    return out


@method("conversations", ConversationsParams)
async def conversations(ctx: RpcContext, call: Call[ConversationsParams]) -> Answer:
    items, cursor = await ctx.conversations.list_for(call.uid, call.params.limit, call.params.cursor)
    # How far a user the caller blocks has read is not shown (its receipts do not reach the caller).
    hidden = await ctx.blocks.blocked_among(call.uid, {i.peer for i in items if i.peer_read_seq is not None and i.peer})
    last = await _rendered(ctx, call.uid, list(
        (await ctx.messages.by_ids([i.last_msg_id for i in items if i.last_msg_id])).values()))
    threads = await ctx.messages.threads.unread_followed(call.uid, [i.conv for i in items])
    rendered = [
        {"conv": i.conv, "kind": i.kind, "peer": i.peer, "name": i.name or None, "muted": i.muted,
         "pinned": i.pinned, "last": last.get(i.last_msg_id) if i.last_msg_id else None,
         "last_seq": i.last_seq, "read_seq": i.read_seq, "unread": i.unread, "unread_mentions": i.unread_mentions,
         "unread_threads": threads.get(i.conv, 0)}
        | ({"peer_read_seq": i.peer_read_seq} if i.peer_read_seq is not None and i.peer not in hidden else {})
        | ({"ttl": i.ttl} if i.ttl else {})
        for i in items
    ]
    return {"items": rendered, "next_cursor": cursor}, []


@method("read", ReadParams, limit=Limit.READ, membership=True)
async def read(ctx: RpcContext, call: Call[ReadParams]) -> Answer:
    r = await ctx.conversations.mark_read(call.membership, call.params.seq)
    events: list[Publish] = []
    if r.advanced:
        # The peers' receipt (those whose window holds the seq; in a 1:1, not a peer who blocks the
        # reader) and the user's other devices' unread sync; in a group larger than
        # group_receipts_max, only the latter.
        body = dumps({"type": "read", "conv": r.conv, "from": call.uid, "seq": r.read_seq})
        small = r.conv.startswith("d:") or r.size <= ctx.group_receipts_max
        to = r.members if small and not await ctx.blocks.blocked_in(call.uid, r.conv) else (call.uid,)
        events = [Publish(ctx.topics.inbox(member, "event"), body) for member in to]
    return {"conv": r.conv, "read_seq": r.read_seq, "unread": r.unread}, events


# ---- threads (docs/protocol.md, "Threads") ----------------------------------------------------
async def _thread_history(ctx: RpcContext, call: Call[HistoryParams]) -> Answer:
    """``history`` with ``thread``: the thread's replies in order, and its root."""
    p = call.params
    assert p.thread is not None
    root, page = await ctx.messages.threads.history(call.membership, p.thread, after_seq=p.after_seq,
                                                    before_seq=p.before_seq, limit=p.limit)
    rendered = await _rendered(ctx, call.uid, [root, *page.messages], upto=call.membership.window.upto)
    return {"thread": root.id, "root": rendered[root.id], "messages": [rendered[m.id] for m in page.messages],
            "has_more": page.has_more}, []


@method("threads", ThreadsParams, membership=True)
async def threads(ctx: RpcContext, call: Call[ThreadsParams]) -> Answer:
    """A conversation's threads, newest reply first: root, replies, last reply, the caller's unread."""
    items, cursor = await ctx.messages.threads.page(call.membership, cursor=call.params.cursor,
                                                    limit=call.params.limit)
    shown = [t.root for t in items] + [t.last for t in items if t.last is not None]
    rendered = await _rendered(ctx, call.uid, shown)
    return {"conv": call.params.conv, "items": [
        {"thread": t.root.id, "root": rendered[t.root.id], "replies": t.replies,
         "last": rendered[t.last.id] if t.last is not None else None, "read_tseq": t.read_tseq, "unread": t.unread}
        for t in items], "next_cursor": cursor}, []


@method("thread.read", ThreadReadParams, limit=Limit.READ, membership=True)
async def thread_read(ctx: RpcContext, call: Call[ThreadReadParams]) -> Answer:
    """The caller's read marker in one thread; its other devices are told (a thread_read event)."""
    p = call.params
    r = await ctx.messages.threads.read(call.membership, p.thread, p.tseq)
    result = {"conv": r.conv, "thread": r.root, "read_tseq": r.read_tseq, "unread": r.unread}
    events = [Publish(ctx.topics.inbox(call.uid, "event"), dumps({"type": "thread_read", **result}))] \
        if r.changed else []
    return result, events


@method("read_by", ReadByParams)
async def read_by(ctx: RpcContext, call: Call[ReadByParams]) -> Answer:
    """Who has read one message and who has not (its sender, and a group's owner and admins)."""
    p = call.params
    m, found = await ctx.messages.read_by(call.uid, p.id, conv=p.conv, after=p.cursor, limit=p.limit)
    return {"id": m.id, "conv": m.conv, "seq": m.seq, "read": [{"uid": u} for u in found.read],
            "unread": list(found.unread), "read_count": found.read_count, "unread_count": found.unread_count,
            "next_cursor": found.next_cursor}, []


@method("conversation.settings", SettingsParams, membership=True)
async def conversation_settings(ctx: RpcContext, call: Call[SettingsParams]) -> Answer:
    muted, pinned = await ctx.conversations.set_flags(call.membership, muted=call.params.muted,
                                                      pinned=call.params.pinned)
    result = {"conv": call.params.conv, "muted": muted, "pinned": pinned}
    return result, [Publish(ctx.topics.inbox(call.uid, "event"), dumps({"type": "settings", **result}))]


@method("conversation.ttl", TtlParams, limit=Limit.FAN_OUT)  # a change is a message to every member
async def conversation_ttl(ctx: RpcContext, call: Call[TtlParams]) -> Answer:
    """Disappearing messages: set a conversation's ttl (a 1:1's members; a group's owner and
    admins). A change is stored as a ``ttl`` message and told to every member as a ``ttl`` event."""
    change = await ctx.messages.expiry.set_ttl(call.uid, call.params.conv, call.params.ttl)
    e = change.message
    if e is None:  # unchanged: nobody is told
        return {"conv": change.conv, "ttl": change.ttl}, []
    body = dumps({"type": "ttl", "conv": e.conv, "seq": e.seq, "id": e.id, "from": e.sender, "ts": e.ts,
                  "ttl": change.ttl})
    return ({"conv": change.conv, "ttl": change.ttl, "seq": e.seq, "id": e.id},
            [Publish(ctx.topics.inbox(u, "event"), body) for u in change.members])


@method("recall", RecallParams)
async def recall(ctx: RpcContext, call: Call[RecallParams]) -> Answer:
    tomb, members = await ctx.messages.recall(call.uid, call.params.id)
    await ctx.reactions.clear(tomb.id)  # a tombstone keeps no reactions
    body = dumps({"type": "recall", "conv": tomb.conv, "id": tomb.id, "seq": tomb.seq, "by": call.uid})
    return ({"id": tomb.id, "conv": tomb.conv, "seq": tomb.seq},
            [Publish(ctx.topics.inbox(m, "event"), body) for m in members])


async def _pin(ctx: RpcContext, call: Call[PinParams], op: str) -> Answer:
    """``pin`` / ``unpin``: the result, and the ``pin`` event when something changed."""
    pins = ctx.messages.pins
    act = pins.pin if op == "add" else pins.unpin
    change = await act(call.uid, call.params.id, conv=call.params.conv)
    m = change.message
    result = {"id": m.id, "conv": m.conv, "seq": m.seq, "pinned": change.pinned}
    if not change.changed:
        return result, []
    body = dumps({"type": "pin", "op": op, "conv": m.conv, "id": m.id, "seq": m.seq, "by": call.uid,
                  "ts": change.ts})
    return result, [Publish(ctx.topics.inbox(u, "event"), body) for u in change.members]


@method("pin", PinParams, limit=Limit.FAN_OUT)  # tells every member, as a reaction does
async def pin(ctx: RpcContext, call: Call[PinParams]) -> Answer:
    return await _pin(ctx, call, "add")


@method("unpin", PinParams, limit=Limit.FAN_OUT)
async def unpin(ctx: RpcContext, call: Call[PinParams]) -> Answer:
    return await _pin(ctx, call, "remove")


@method("pinned", PinnedParams, membership=True)
async def pinned(ctx: RpcContext, call: Call[PinnedParams]) -> Answer:
    """A conversation's pinned messages, newest pin first, as history renders them."""
    found = await ctx.messages.pins.pinned(call.membership)
    rendered = await _rendered(ctx, call.uid, [p.message for p in found.pins])
    return {"conv": call.params.conv, "pins": [{"id": p.message.id, "seq": p.message.seq, "by": p.by, "ts": p.ts,
                                                "message": rendered[p.message.id]} for p in found.pins],
            "hidden": found.hidden}, []


@method("edit", EditParams, limit=Limit.FAN_OUT)
async def edit(ctx: RpcContext, call: Call[EditParams]) -> Answer:
    m, members = await ctx.messages.edit(call.uid, call.params.id, call.params.text)
    body = dumps({"type": "edit", "conv": m.conv, "id": m.id, "seq": m.seq, "text": m.text, "edited_at": m.edited_at,
                  "by": call.uid})
    return ({"id": m.id, "conv": m.conv, "seq": m.seq, "edited_at": m.edited_at},
            [Publish(ctx.topics.inbox(u, "event"), body) for u in members])


async def _react(ctx: RpcContext, call: Call[ReactionParams], op: str) -> Answer:
    """``reaction.add`` / ``reaction.remove``: the result, and the event when something changed."""
    act = ctx.reactions.add if op == "add" else ctx.reactions.remove
    change = await act(call.uid, call.params.id, call.params.emoji)
    m = change.message
    result = {"id": m.id, "conv": m.conv, "seq": m.seq, "emoji": call.params.emoji, "count": change.count}
    if not change.changed:
        return result, []
    body = dumps({"type": "reaction", "op": op, "conv": m.conv, "id": m.id, "seq": m.seq, "emoji": call.params.emoji,
                  "from": call.uid, "count": change.count})
    return result, [Publish(ctx.topics.inbox(u, "event"), body) for u in change.members]


@method("reaction.add", ReactionParams, limit=Limit.FAN_OUT)
async def reaction_add(ctx: RpcContext, call: Call[ReactionParams]) -> Answer:
    return await _react(ctx, call, "add")


@method("reaction.remove", ReactionParams, limit=Limit.FAN_OUT)
async def reaction_remove(ctx: RpcContext, call: Call[ReactionParams]) -> Answer:
    return await _react(ctx, call, "remove")


@method("block.add", UserParams)
async def block_add(ctx: RpcContext, call: Call[UserParams]) -> Answer:
    await ctx.blocks.add(call.uid, call.params.uid)
    return {"uid": call.params.uid, "blocked": True}, []


@method("block.remove", UserParams)
async def block_remove(ctx: RpcContext, call: Call[UserParams]) -> Answer:
    await ctx.blocks.remove(call.uid, call.params.uid)
    return {"uid": call.params.uid, "blocked": False}, []


@method("block.list", NoParams)
async def block_list(ctx: RpcContext, call: Call[NoParams]) -> Answer:
    return {"blocked": await ctx.blocks.blocked_by(call.uid)}, []


def render_profile(p: ProfileInfo, bots: Container[str] = ()) -> dict[str, Any]:
    body = {"uid": p.uid, "name": p.name, "avatar": p.avatar, "status": p.status, "updated_at": p.updated_at}
    if p.uid in bots:
        body["bot"] = True
    return body


@method("profile.get", ProfileGetParams)
async def profile_get(ctx: RpcContext, call: Call[ProfileGetParams]) -> Answer:
    found = await ctx.profiles.get(list(dict.fromkeys(call.params.uids)))
    return {"profiles": {uid: render_profile(p, ctx.bots) for uid, p in found.items()}}, []


@method("profile.set", ProfileSetParams, limit=Limit.PROFILE)
async def profile_set(ctx: RpcContext, call: Call[ProfileSetParams]) -> Answer:
    p = call.params
    profile, contacts = await ctx.profiles.set(call.uid, name=p.name, avatar=p.avatar, status=p.status)
    body = dumps({"type": "profile", **render_profile(profile, ctx.bots)})
    blockers = await ctx.blocks.blockers(call.uid, set(contacts))  # not told (a free-text channel to them)
    return render_profile(profile, ctx.bots), [Publish(ctx.topics.inbox(u, "event"), body)
                                     for u in [call.uid, *contacts] if u not in blockers]


# ---- attachments ----------------------------------------------------------------------------
@method("file.upload", FileUploadParams, limit=Limit.FAN_OUT)  # as costly as a message: the message bucket too
async def file_upload(ctx: RpcContext, call: Call[FileUploadParams]) -> Answer:
    p = call.params
    ticket = await ctx.attachments.upload(call.uid, name=p.name, mime=p.mime, size=p.size, sha256=p.sha256)
    t = ticket.target
    return {"key": ticket.key, "url": t.url, "method": t.method, "headers": t.headers, "expires_at": t.expires_at}, []


@method("file.url", FileUrlParams)
async def file_url(ctx: RpcContext, call: Call[FileUrlParams]) -> Answer:
    urls, expires = await ctx.attachments.download_urls(call.uid, list(dict.fromkeys(call.params.keys)))
    return {"urls": urls, "expires_at": expires}, []


def _contact_event(ctx: RpcContext, to: str | None, op: str, uid: str, text: str = "") -> list[Publish]:
    if to is None:
        return []
    body: dict[str, Any] = {"type": "contact", "op": op, "from": uid}
    if text:
        body["text"] = text
    return [Publish(ctx.topics.inbox(to, "event"), dumps(body))]


@method("contact.request", ContactRequestParams, limit=Limit.FAN_OUT)
async def contact_request(ctx: RpcContext, call: Call[ContactRequestParams]) -> Answer:
    p = call.params
    outcome = await ctx.contacts.request(call.uid, p.uid, p.text)
    op = "accept" if outcome.accepted else "request"
    return {"uid": p.uid, "contact": outcome.accepted}, _contact_event(ctx, outcome.notify, op, call.uid, p.text)


@method("contact.accept", UserParams)
async def contact_accept(ctx: RpcContext, call: Call[UserParams]) -> Answer:
    outcome = await ctx.contacts.accept(call.uid, call.params.uid)
    return {"uid": call.params.uid, "contact": True}, _contact_event(ctx, outcome.notify, "accept", call.uid)


@method("contact.decline", UserParams)
async def contact_decline(ctx: RpcContext, call: Call[UserParams]) -> Answer:
    await ctx.contacts.decline(call.uid, call.params.uid)
    return {"uid": call.params.uid, "contact": False}, []


@method("contact.list", NoParams)
async def contact_list(ctx: RpcContext, call: Call[NoParams]) -> Answer:
    found = await ctx.contacts.list(call.uid)
    return {"contacts": found.contacts, "outgoing": found.outgoing,
            "incoming": [{"uid": u, "text": t, "ts": ts} for u, t, ts in found.incoming]}, []


@method("presence", PresenceParams)
async def presence(ctx: RpcContext, call: Call[PresenceParams]) -> Answer:
    found = await ctx.presence.lookup(list(dict.fromkeys(call.params.uids)))
    for uid in await ctx.blocks.blockers(call.uid, set(found)):  # who blocks the caller shows it no presence
        found[uid] = []
    return {"presence": {
        uid: {"online": any(d.online for d in devices),
              "devices": [{"device": d.device, "online": d.online, "platform": d.platform, "ts": d.ts}
                          for d in devices]}
        for uid, devices in found.items()
    }}, []


# ---- groups (laned with the group's messages, so both keep the order they were sent in) -------
def member_event_publishes(topics: Topics, change: GroupChange) -> list[Publish]:
    """A group change's ``member`` event (it carries the seq) to everyone concerned."""
    e = change.event
    body = dumps({"type": "member", "conv": e.conv, "seq": e.seq, "id": e.id, "from": e.sender, "ts": e.ts,
                  **(e.data or {})})
    return [Publish(topics.inbox(uid, "event"), body) for uid in change.notify]


def _changed(ctx: RpcContext, change: GroupChange) -> Answer:
    """The change's result, and its ``member`` event to everyone concerned."""
    return ({"gid": change.gid, "conv": change.conv, "seq": change.event.seq, "members": list(change.members)},
            member_event_publishes(ctx.topics, change))


def _group(info: GroupInfo) -> dict[str, Any]:
    return {"gid": info.gid, "conv": info.conv, "name": info.name, "owner": info.owner,
            "members": [{"uid": u, "role": r} for u, r in info.members], "mention_all": info.mention_all,
            "pin": info.pin}


@method("group.create", GroupCreateParams)
async def group_create(ctx: RpcContext, call: Call[GroupCreateParams]) -> Answer:
    return _changed(ctx, await ctx.groups.create(call.uid, call.params.name, call.params.members))


@method("group.add", GroupMembersParams, lane=Lane.GROUP)
async def group_add(ctx: RpcContext, call: Call[GroupMembersParams]) -> Answer:
    return _changed(ctx, await ctx.groups.add(call.uid, call.params.gid, call.params.members))


@method("group.remove", GroupMembersParams, lane=Lane.GROUP)
async def group_remove(ctx: RpcContext, call: Call[GroupMembersParams]) -> Answer:
    return _changed(ctx, await ctx.groups.remove(call.uid, call.params.gid, call.params.members))


@method("group.leave", GroupParams, lane=Lane.GROUP)
async def group_leave(ctx: RpcContext, call: Call[GroupParams]) -> Answer:
    return _changed(ctx, await ctx.groups.leave(call.uid, call.params.gid))


@method("group.info", GroupParams, lane=Lane.GROUP)
async def group_info(ctx: RpcContext, call: Call[GroupParams]) -> Answer:
    return _group(await ctx.groups.info(call.uid, call.params.gid)), []


@method("group.role", GroupRoleParams, lane=Lane.GROUP)
async def group_role(ctx: RpcContext, call: Call[GroupRoleParams]) -> Answer:
    p = call.params
    return _group(await ctx.groups.set_role(call.uid, p.gid, p.uid, p.role)), []


@method("group.settings", GroupSettingsParams, lane=Lane.GROUP)
async def group_settings(ctx: RpcContext, call: Call[GroupSettingsParams]) -> Answer:
    """Read a group's settings (any member), or change them (the owner and admins: every member is told)."""
    p = call.params
    s = await ctx.groups.settings(call.uid, p.gid, mention_all=p.mention_all, pin=p.pin)
    result = {"gid": s.gid, "conv": s.conv, "mention_all": s.mention_all, "pin": s.pin}
    body = dumps({"type": "group", "op": "settings", **result, "by": call.uid})
    return result, [Publish(ctx.topics.inbox(u, "event"), body) for u in s.notify]


# ---- notifications, push, search ---------------------------------------------------------------
@method("notifications", NotificationsParams, own_device=True)
async def notifications(ctx: RpcContext, call: Call[NotificationsParams]) -> Answer:
    if ctx.notifications is None:
        return {"notifications": []}, []
    assert call.device is not None  # own_device: the router routes it only from a device topic
    delivery = await ctx.notifications.claim(call.uid, call.device)
    notes = [{"id": n.id, "type": "system", "body": n.body, "ts": n.ts}
             for n in (delivery.notifications if delivery else ())]
    return {"notifications": notes}, []


def _push(ctx: RpcContext) -> PushService:
    if ctx.push is None:
        msg = "push is not available"
        raise Unavailable(msg)
    return ctx.push


@method("push.register", PushTargetParams, limit=Limit.PUSH_REGISTER)
async def push_register(ctx: RpcContext, call: Call[PushTargetParams]) -> Answer:
    await _push(ctx).register(call.uid, call.params.platform, call.params.token)
    return {"platform": call.params.platform, "registered": True}, []


@method("push.unregister", PushTargetParams)
async def push_unregister(ctx: RpcContext, call: Call[PushTargetParams]) -> Answer:
    await _push(ctx).unregister(call.uid, call.params.platform, call.params.token)
    return {"platform": call.params.platform, "registered": False}, []


@method("search", SearchParams, limit=Limit.SEARCH)
async def search(ctx: RpcContext, call: Call[SearchParams]) -> Answer:
    if ctx.search is None:
        msg = "search is not available"
        raise Unavailable(msg)
    p = call.params
    hits = await ctx.search.search(call.uid, p.q, conv=p.conv, sender=p.sender, since=p.since, until=p.until,
                                   limit=p.limit)
    return {"messages": [{"id": h.id, "conv": h.conv, "seq": h.seq, "from": h.sender, "ts": h.ts, "text": h.text}
                         | ({"thread": h.thread} if h.thread is not None else {}) for h in hits]}, []


# ---- scheduled sends ---------------------------------------------------------------------------
def _scheduled(ctx: RpcContext) -> ScheduledSends:
    if ctx.scheduled is None:
        msg = "scheduled sends are not available"
        raise Unavailable(msg)
    return ctx.scheduled


@method("schedule.list", ScheduleListParams)
async def schedule_list(ctx: RpcContext, call: Call[ScheduleListParams]) -> Answer:
    """The caller's pending scheduled sends, soonest first, paged."""
    page, cursor = await _scheduled(ctx).pending(call.uid, cursor=call.params.cursor, limit=call.params.limit)
    return {"scheduled": [render_schedule(s) for s in page], "next_cursor": cursor}, []


@method("schedule.cancel", ScheduleCancelParams)
async def schedule_cancel(ctx: RpcContext, call: Call[ScheduleCancelParams]) -> Answer:
    """Cancel one of the caller's pending scheduled sends; its devices get the ``cancel`` event."""
    s = await _scheduled(ctx).cancel(call.uid, call.params.id)
    result = {"id": s.id, "cid": s.cid, "conv": s.conv, "status": "cancelled"}
    return result, [event(ctx.topics, call.uid, "cancel", {"id": s.id, "cid": s.cid, "conv": s.conv, "at": s.at})]
