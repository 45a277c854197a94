"""Conversations and their members (tortoise models)."""

from typing import Any

from tortoise import fields
from tortoise.models import Model


class Conversation(Model):
    """One conversation: ``d:{a}:{b}`` (1:1) or ``g:{gid}``. ``last_seq`` is the seq counter."""

    id = fields.CharField(max_length=140, primary_key=True)
    kind = fields.CharField(max_length=8)  # "direct" | "group"
    last_seq = fields.BigIntField(default=0)
    last_msg_id = fields.CharField(max_length=26, null=True)
    # Not indexed (migration 1 dropped the index): no query reads conversations by last_ts (the
    # list is read through members), and every send updates it; unindexed, PostgreSQL updates the
    # row in place (HOT) instead of writing new entries into every index of the table.
    last_ts = fields.BigIntField(default=0)
    created_at = fields.BigIntField()
    name = fields.CharField(max_length=128, default="")  # groups
    owner = fields.CharField(max_length=64, null=True)  # groups
    # A group's setting: who may mention @all ("admins": the owner and admins; "members": anyone).
    # Null is the default, "admins" (no default in the column: 1:1s are made by plain SQL).
    mention_all = fields.CharField(max_length=8, null=True)
    # A group's latest @all mentions (ms, oldest first; at most limits.mention_all_per_minute, all
    # within the last minute): the per-group @all rate, kept under the conversation's lock so it
    # holds across bridge processes. Read and written only by a send that mentions @all.
    mention_all_recent: Any = fields.JSONField(null=True)
    # A group's setting: who may pin and unpin messages ("members": anyone, the default when null;
    # "admins": the owner and admins).
    pin = fields.CharField(max_length=8, null=True)
    # Disappearing messages: seconds a message sent from now on lives (null: they stay), set by a
    # 1:1's members or a group's owner and admins (services/messages/expiry.py).
    ttl = fields.IntField(null=True)

    class Meta:
        table = "conversations"


class Member(Model):
    """A user's membership and read state in one conversation."""

    id = fields.BigIntField(primary_key=True)
    conv: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="members", on_delete=fields.CASCADE,
    )
    uid = fields.CharField(max_length=64, db_index=True)
    read_seq = fields.BigIntField(default=0)
    # Visible messages: joined_seq < seq <= left_seq (or no upper bound while a member).
    joined_seq = fields.BigIntField(default=0)
    left_seq = fields.BigIntField(null=True)
    role = fields.CharField(max_length=8, default="member")  # "owner" | "admin" | "member"
    muted = fields.BooleanField(default=False)
    pinned = fields.BooleanField(default=False)

    class Meta:
        table = "members"
        unique_together = (("conv", "uid"),)


class Mention(Model):
    """A member mentioned by a message.

    By uid, or as one of @all's: the rows ``conversations`` counts as the member's unread
    mentions (``seq`` above its read marker). Written in the message's transaction, only for
    messages with mentions; removed with the message's recall."""

    id = fields.BigIntField(primary_key=True)
    conv = fields.CharField(max_length=140)
    seq = fields.BigIntField()
    uid = fields.CharField(max_length=64)

    class Meta:
        table = "mentions"
        # (uid, conv, seq): a member's count per conversation is a range of this index.
        unique_together = (("uid", "conv", "seq"),)
        indexes = (("conv", "seq"),)  # a recall's rows, push's lookup
