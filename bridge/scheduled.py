"""Scheduled sends on the wire (docs/protocol.md, "Scheduled send"): a schedule as the sender's
devices see it, the ``scheduled`` events, and the publishes of a delivery pass (the messages to
the members, as a send publishes them; then the sender's events). Sans-IO: the service's types
are imported for type checking only."""

from __future__ import annotations

from collections.abc import Container
from typing import TYPE_CHECKING, Any

from bridge.formats import dumps
from bridge.outbound import Publish, Topics
from bridge.wire import render_message
from services.messages.commands import ATTACHMENT_TYPES

if TYPE_CHECKING:
    from services.messages.scheduled import Outcome, Schedule
    from services.messages.service import SendResult

STATUS = {"pending": "scheduled", "sending": "scheduled", "sent": "sent", "failed": "failed",
          "cancelled": "cancelled"}


def render_schedule(s: Schedule) -> dict[str, Any]:
    """A pending schedule as ``schedule.list`` and the ``add`` event show it: the send as it was
    sent (``to`` or ``group``, ``type``, ``text``, ``attachment`` or ``data``, ``mentions``,
    ``reply_to``, ``thread``), its ``id``, ``at`` and ``created``."""
    c = s.command
    body: dict[str, Any] = {"id": s.id, "cid": s.cid, "conv": s.conv, "at": s.at, "created": s.created}
    for name in ("to", "group", "type", "text", "mentions", "reply_to", "thread"):
        if c.get(name) is not None:
            body[name] = c[name]
    if c.get("data") is not None:
        body["attachment" if c["type"] in ATTACHMENT_TYPES else "data"] = c["data"]
    return body


def scheduled_ack(cid: str, s: Schedule) -> dict[str, Any]:
    """The ack of a scheduled send (a repeat of its cid answers the schedule's state now)."""
    ack: dict[str, Any] = {"cid": cid, "status": STATUS[s.state], "id": s.id, "conv": s.conv, "at": s.at}
    if s.message_id is not None:
        ack["message_id"] = s.message_id
    return ack


def event(topics: Topics, uid: str, op: str, body: dict[str, Any]) -> Publish:
    return Publish(topics.inbox(uid, "event"), dumps({"type": "scheduled", "op": op, **body}))


def delivery_publishes(topics: Topics, results: list[SendResult], bots: Container[str] = ()) -> list[Publish]:
    """The messages stored (a send's, a pass's), to their recipients; ``mentioned`` in the copies of
    those they mention, ``bot`` when a bot sent them (``bots``: the bots this process knows)."""
    out: list[Publish] = []
    for result in results:
        rendered = render_message(result.message, bots)
        body = dumps(rendered)
        flagged = dumps({**rendered, "mentioned": True}) if result.mentioned else body
        out.extend(Publish(topics.inbox(uid, "msg"), flagged if uid in result.mentioned else body)
                   for uid in result.recipients)
    return out


def outcome_publishes(topics: Topics, outcomes: list[Outcome]) -> list[Publish]:
    """What the senders are told of a pass: ``sent`` (with the message's id and seq) or
    ``failed`` (with the error a send would have had)."""
    out: list[Publish] = []
    for o in outcomes:
        s = o.schedule
        base = {"id": s.id, "cid": s.cid, "conv": s.conv, "at": s.at}
        if (m := o.message) is not None:
            out.append(event(topics, s.sender, "sent", {**base, "message_id": m.id, "seq": m.seq, "ts": m.ts}))
        elif (err := o.error) is not None:
            error: dict[str, Any] = {"code": err.code.value, "message": err.message}
            if err.reason is not None:  # refused by the operator's before_send callback
                error["reason"] = err.reason
            out.append(event(topics, s.sender, "failed", {**base, "error": error}))
    return out
