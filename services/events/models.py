"""The message-event queue's table (tortoise model)."""

from tortoise import fields
from tortoise.models import Model


class MessageEvent(Model):
    """A stored message, written in the message's own transaction: the durable queue that push
    (and later search indexing) consume. Deleted once consumed."""

    id = fields.BigIntField(primary_key=True)
    message_id = fields.CharField(max_length=26)
    created_at = fields.BigIntField()

    class Meta:
        table = "message_events"
