"""Conversations and their members (tortoise models)."""

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
