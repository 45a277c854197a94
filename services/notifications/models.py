"""System notifications and per-device delivery cursors (tortoise models)."""

from typing import Any

from tortoise import fields
from tortoise.models import Model


class Notification(Model):
    """One notification for one user (a notification to many users is one row each)."""

    id = fields.BigIntField(primary_key=True)
    uid = fields.CharField(max_length=64, db_index=True)
    body: Any = fields.JSONField()
    created_at = fields.BigIntField()

    class Meta:
        table = "notifications"


class NotificationCursor(Model):
    """The last notification id handed to one device (deliveries are ranges after it)."""

    id = fields.BigIntField(primary_key=True)
    uid = fields.CharField(max_length=64)
    device = fields.CharField(max_length=32)
    last_id = fields.BigIntField(default=0)

    class Meta:
        table = "notification_cursors"
        unique_together = (("uid", "device"),)
