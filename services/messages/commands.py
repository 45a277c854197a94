"""The plain types of the message service's interface: what the wire layer builds and reads.
No database here (``bridge.router`` and ``bridge.wire`` are sans-IO and import only this)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from services.ids import direct_conv_id

if TYPE_CHECKING:
    from services.messages.models import Message

# Messages whose ``data`` is an attachment object (protocol §3, attachments).
ATTACHMENT_TYPES = ("image", "file", "audio", "video")
FORWARD_TYPE = "forward"  # a forward's command type until its copy is made (never stored; forwards.py)


@dataclass(frozen=True, slots=True)
class SendCommand:
    """A validated send from the wire (the bridge has checked shapes and sizes)."""

    sender: str
    cid: str
    to: str | None
    group: str | None
    type: str
    text: str | None
    data: dict[str, Any] | None
    mentions: tuple[str, ...] = ()
    reply_to: str | None = None  # the id of a message of the same conversation this one answers
    forward: tuple[str, ...] = ()  # the ids of the messages it forwards (services/messages/forwards.py)
    merge: bool = False  # the forwarded messages as one ``merged`` message
    thread: str | None = None  # the root of the thread this one replies in (protocol, threads)

    @property
    def conv(self) -> str:
        return direct_conv_id(self.sender, self.to) if self.to is not None else f"g:{self.group}"

    def content(self) -> dict[str, Any]:
        """What was sent, as JSON: ``type`` and those of ``to``, ``group``, ``text``, ``data``,
        ``reply_to``, ``thread`` and ``mentions`` it has (a scheduled send's row; a before_send
        callback's event)."""
        out: dict[str, Any] = {"type": self.type}
        for name in ("to", "group", "text", "data", "reply_to", "thread"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.mentions:
            out["mentions"] = list(self.mentions)
        return out


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: str
    conv: str
    seq: int
    sender: str
    cid: str
    type: str
    text: str | None
    data: dict[str, Any] | None
    ts: int
    mentions: tuple[str, ...] = ()
    reply: dict[str, Any] | None = None  # the quote of the message it answers (protocol §3, replies)
    edited_at: int | None = None  # the sender's last edit of the text (protocol §4, edit)
    preview: dict[str, Any] | None = None  # its link's preview, once fetched (protocol §6, preview)
    forwarded: dict[str, Any] | None = None  # a forwarded copy's origin (protocol §3, forwarding)
    thread: str | None = None  # a thread reply's root id (protocol, threads)
    tseq: int | None = None  # its place in the thread, 1..n
    expires_at: int | None = None  # when it disappears (ms), if its conversation's ttl was set (messages/expiry.py)

    @property
    def attachment(self) -> dict[str, Any] | None:
        """An attachment message's attachment object (kept in ``data``)."""
        return self.data if self.type in ATTACHMENT_TYPES else None

    @classmethod
    def from_row(cls, row: Message) -> StoredMessage:
        return cls(row.id, row.conv, row.seq, row.sender, row.cid, row.type, row.text, row.data, row.ts,
                   tuple(row.mentions or ()), row.reply, row.edited_at, row.preview, row.forwarded, row.thread,
                   row.tseq, row.expires_at)
