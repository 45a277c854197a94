"""Who blocked whom (tortoise model): one row per (blocker, blocked)."""

from tortoise import fields
from tortoise.models import Model


class Block(Model):
    id = fields.BigIntField(primary_key=True)
    uid = fields.CharField(max_length=64)  # the blocker
    blocked = fields.CharField(max_length=64, db_index=True)
    ts = fields.BigIntField()

    class Meta:
        table = "blocks"
        unique_together = (("uid", "blocked"),)
