"""The callback outbox's table (tortoise model)."""

from tortoise import fields
from tortoise.models import Model


class CallbackOutboxRow(Model):
    """One event for one endpoint (``after_*``, ``membership``, ``user``), written in the
    transaction of the change it reports; deleted once the endpoint took it (or it was given up).
    ``stream``: the ordering key (a conversation, or ``user:<uid>``): one stream's rows go to
    their endpoint one at a time, in ``id`` order."""

    id = fields.BigIntField(primary_key=True)
    endpoint = fields.CharField(max_length=32)
    stream = fields.CharField(max_length=96)
    event = fields.CharField(max_length=16)
    event_id = fields.CharField(max_length=26)  # the same for every endpoint and every attempt
    body = fields.TextField()  # the JSON POSTed, as signed
    created_at = fields.BigIntField()
    next_at = fields.BigIntField()  # due (ms): now, or after a failed attempt's back-off
    attempts = fields.IntField(default=0)

    class Meta:
        table = "callback_outbox"
        indexes = (("endpoint", "stream", "id"),)
