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
    # The connection that made the device online, when the broker names one (RabbitMQ's process id
    # of the connection, in cluster mode): its close then marks the device offline, unless a newer
    # connection of the device took its place. "" otherwise.
    conn = fields.CharField(max_length=128, default="", db_index=True)

    class Meta:
        table = "device_presence"
        unique_together = (("uid", "device"),)
