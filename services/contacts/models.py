"""Contact requests and contacts (tortoise model): one row per (requester, addressee)."""

from tortoise import fields
from tortoise.models import Model


class ContactRequest(Model):
    id = fields.BigIntField(primary_key=True)
    uid = fields.CharField(max_length=64)  # who asked
    peer = fields.CharField(max_length=64, db_index=True)  # whom
    accepted = fields.BooleanField(default=False)  # accepted: uid and peer are contacts
    text = fields.CharField(max_length=200, default="")
    ts = fields.BigIntField()

    class Meta:
        table = "contact_requests"
        unique_together = (("uid", "peer"),)
