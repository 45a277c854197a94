"""Emoji reactions to messages (tortoise model): one row per (message, user, emoji)."""

from tortoise import fields
from tortoise.models import Model


class Reaction(Model):
    id = fields.BigIntField(primary_key=True)
    message_id = fields.CharField(max_length=26, db_index=True)
    uid = fields.CharField(max_length=64)
    emoji = fields.CharField(max_length=32)
    ts = fields.BigIntField()

    class Meta:
        table = "reactions"
        unique_together = (("message_id", "uid", "emoji"),)
