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
    # A forwarded copy's origin: {"from", "kind", "ts"} (services/messages/forwards.py).
    forwarded: Any = fields.JSONField(null=True)
    # A thread reply's root message id and its place in the thread (1..n, gap-free); null for
    # every other message. Not indexed: a thread's replies are found through ``thread_replies``
    # (so a message without a thread costs no index entry).
    thread = fields.CharField(max_length=26, null=True)
    tseq = fields.BigIntField(null=True)
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


class MessageFile(Model):
    """An upload a merged message refers to (it may hold several attachments; a message of one
    attachment uses ``file_key``/``thumb_key``). Who may download, and whether a recall leaves the
    upload unreferenced, read these as they read the columns (services/messages/forwards.py)."""

    id = fields.BigIntField(primary_key=True)
    message_id = fields.CharField(max_length=26, db_index=True)
    key = fields.CharField(max_length=64, db_index=True)

    class Meta:
        table = "message_files"


class Thread(Model):
    """A thread's counters, one row per root message with at least one reply.

    services/messages/threads.py. Owned by the message service; written with each reply, under
    the conversation's lock, in the reply's transaction: ``replies`` is the last tseq handed out
    (replies are numbered 1..n without gaps), ``last_*`` the latest reply. The thread list reads
    these rows, newest reply first, without counting anything."""

    root_id = fields.CharField(max_length=26, primary_key=True)
    conv = fields.CharField(max_length=140)
    root_seq = fields.BigIntField()  # the root's seq (windows are in seqs)
    replies = fields.BigIntField()
    last_id = fields.CharField(max_length=26)
    last_seq = fields.BigIntField()
    last_ts = fields.BigIntField()

    class Meta:
        table = "threads"
        indexes = (("conv", "last_ts"),)


class ThreadReply(Model):
    """A thread's reply, for paging a thread in order (history with ``thread``): written only
    for replies, so a plain message costs no row and no index entry."""

    id = fields.BigIntField(primary_key=True)
    root_id = fields.CharField(max_length=26)
    seq = fields.BigIntField()  # the reply's conversation seq
    tseq = fields.BigIntField()
    message_id = fields.CharField(max_length=26)

    class Meta:
        table = "thread_replies"
        unique_together = (("root_id", "seq"), ("root_id", "tseq"))


class ThreadRead(Model):
    """A member's read marker in one thread: at most one row per (member, thread), written only
    by the member's own ``thread.read`` or reply (never by someone else's send)."""

    id = fields.BigIntField(primary_key=True)
    uid = fields.CharField(max_length=64)
    root_id = fields.CharField(max_length=26)
    conv = fields.CharField(max_length=140)
    read_tseq = fields.BigIntField()

    class Meta:
        table = "thread_reads"
        unique_together = (("uid", "root_id"),)


class ScheduledSend(Model):
    """A send to be stored and delivered at ``at`` (services/messages/scheduled.py).

    Owned by the message service, as the message it becomes: ``(sender, cid)`` is unique here as
    in ``messages``, and the delivery is a send with that cid, so it is stored once whoever
    delivers it. ``state``: pending, sending (claimed by a delivery pass), sent, failed, cancelled.
    """

    id = fields.CharField(max_length=26, primary_key=True)
    sender = fields.CharField(max_length=64)
    cid = fields.CharField(max_length=64)
    conv = fields.CharField(max_length=140)
    at = fields.BigIntField()  # when to send (ms)
    command: Any = fields.JSONField()  # the send: to, group, type, text, data, mentions, reply_to
    created = fields.BigIntField()
    state = fields.CharField(max_length=16, default="pending")
    message_id = fields.CharField(max_length=26, null=True)  # once sent
    error: Any = fields.JSONField(null=True)  # once failed: {"code", "message"}
    done_at = fields.BigIntField(null=True)  # sent, failed or cancelled (ms); purged a while after
    # The uploads an attachment send refers to: kept from the sweep of unused uploads until then.
    file_key = fields.CharField(max_length=64, null=True, db_index=True)
    thumb_key = fields.CharField(max_length=64, null=True, db_index=True)

    class Meta:
        table = "scheduled_sends"
        unique_together = (("sender", "cid"),)
        indexes = (("state", "at"), ("sender", "state", "at"))
