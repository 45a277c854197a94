"""Last known presence of each device (tortoise model)."""

from tortoise import fields
from tortoise.models import Model


class DevicePresence(Model):
    id = fields.BigIntField(primary_key=True)
    uid = fields.CharField(max_length=64, db_index=True)
    device = fields.CharField(max_length=32)
    online = fields.BooleanField(default=False)
    platform = fields.CharField(max_length=32, default="")
    ts = fields.BigIntField()

    class Meta:
        table = "device_presence"
        unique_together = (("uid", "device"),)
