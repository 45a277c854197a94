"""Users' public profiles (tortoise model): what other users see of them."""

from tortoise import fields
from tortoise.models import Model


class Profile(Model):
    uid = fields.CharField(max_length=64, primary_key=True)
    name = fields.CharField(max_length=64, default="")  # the display name
    avatar = fields.CharField(max_length=512, default="")  # a URL or an attachment key
    status = fields.CharField(max_length=140, default="")  # the status text
    updated_at = fields.BigIntField()

    class Meta:
        table = "profiles"
