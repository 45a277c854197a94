"""Stored messages (tortoise model)."""

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class SetIndex(Index):
    """An index of the rows where its one field is set (a partial index, on SQLite and
    PostgreSQL): a row without it costs the index nothing."""

    def __init__(self, *, fields: tuple[str, ...], name: str) -> None:
        super().__init__(fields=fields, name=name)
        self.extra = f" WHERE {fields[0]} IS NOT NULL"


class Message(Model):
    """A message, stored once per conversation. ``(conv, seq)`` and ``(sender, cid)`` are unique:
    the first gives gap-free ordering, the second idempotent sends."""

    id = fields.CharField(max_length=26, primary_key=True)
    conv = fields.CharField(max_length=140)
    seq = fields.BigIntField()
    sender = fields.CharField(max_length=64)
    cid = fields.CharField(max_length=64)
    type = fields.CharField(max_length=16)
    text = fields.TextField(null=True)
    data: Any = fields.JSONField(null=True)
    mentions: Any = fields.JSONField(null=True)
    ts = fields.BigIntField()
    # A reply's quote of the message it answers, as it was when the reply was sent:
    # {"id", "seq", "from", "type", "excerpt"} (rendered server-side: a client without the original shows it).
    reply: Any = fields.JSONField(null=True)
    reply_to = fields.CharField(max_length=26, null=True, db_index=True)  # the quoted id (a recall or edit updates its quotes)
    edited_at = fields.BigIntField(null=True)  # the sender's last edit (ms), if any
    # The uploads an attachment message refers to (its file and thumbnail): who may download them,
    # and whether a recall leaves them unreferenced.
    file_key = fields.CharField(max_length=64, null=True, db_index=True)
    thumb_key = fields.CharField(max_length=64, null=True, db_index=True)
    # The link preview of a text message, once fetched: {"url", "title", "description", "image"}
    # (services.previews; cleared by a recall or an edit).
    preview: Any = fields.JSONField(null=True)
    # When it disappears (ms; docs/protocol.md, "Disappearing messages"): a message sent while its
    # conversation's ttl was set. Indexed only where set: the expiry sweep's queue; a message
    # without it costs the index nothing.
    expires_at = fields.BigIntField(null=True)

    class Meta:
        table = "messages"
        unique_together = (("conv", "seq"), ("sender", "cid"))
        indexes = (SetIndex(fields=("expires_at",), name="idx_messages_expires_at"),)


class Pin(Model):
    """A pinned message of a conversation.

    services/messages/pins.py. Owned by the message service, as the message it refers to: a
    recall unpins in the recall's own transaction. At most ``limits.max_pins`` per conversation,
    written under the conversation's lock."""

    id = fields.BigIntField(primary_key=True)
    conv = fields.CharField(max_length=140)
    message_id = fields.CharField(max_length=26, unique=True)
    seq = fields.BigIntField()  # the message's (windows are in seqs)
    pinned_by = fields.CharField(max_length=64)
    ts = fields.BigIntField()  # when it was pinned (ms)

    class Meta:
        table = "pins"
        indexes = (("conv", "ts"),)
