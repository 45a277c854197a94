"""Push targets and the durable push outbox (tortoise models)."""

from typing import Any

from tortoise import fields
from tortoise.models import Model


class PushTarget(Model):
    """Where to push for a user: an FCM registration token, an APNs device token, a webhook URL."""

    id = fields.BigIntField(primary_key=True)
    uid = fields.CharField(max_length=64, db_index=True)
    platform = fields.CharField(max_length=8)  # "fcm" | "apns" | "webhook"
    token = fields.CharField(max_length=512)
    created_at = fields.BigIntField()

    class Meta:
        table = "push_targets"
        unique_together = (("uid", "platform", "token"),)


class PushJob(Model):
    """One push to send (the outbox): retried with back-off until sent, dropped, or invalid."""

    id = fields.BigIntField(primary_key=True)
    target_id = fields.BigIntField(db_index=True)
    message_id = fields.CharField(max_length=26)
    payload: Any = fields.JSONField()
    attempts = fields.IntField(default=0)
    next_at = fields.BigIntField(db_index=True)
    created_at = fields.BigIntField()
    last_error = fields.CharField(max_length=255, null=True)
    expires_at = fields.BigIntField(null=True)  # its message's: a job still due then is dropped, not sent

    class Meta:
        table = "push_jobs"
        unique_together = (("target_id", "message_id"),)
