"""Uploads (tortoise model): every object a user asked to upload, as declared, until it is deleted."""

from tortoise import fields
from tortoise.models import Model


class Upload(Model):
    key = fields.CharField(max_length=64, primary_key=True)
    owner = fields.CharField(max_length=64, db_index=True)  # the uploader: the only user who may attach it
    name = fields.CharField(max_length=255, default="")
    mime = fields.CharField(max_length=127)
    size = fields.BigIntField()
    sha256 = fields.CharField(max_length=64)
    created_at = fields.BigIntField(db_index=True)
    used = fields.BooleanField(default=False)  # a stored message or a profile has referred to it
    # Deleted (a recall freed it, a sweep or an operator took it): the row stays a while as a
    # tombstone, so its upload URL cannot put the object back and it still counts in the quota.
    gone_at = fields.BigIntField(null=True, db_index=True)

    class Meta:
        table = "uploads"
