"""The audit log (tortoise model): one row per administrative change, appended, never updated."""

from tortoise import fields
from tortoise.models import Model


class AuditEntry(Model):
    id = fields.BigIntField(primary_key=True)  # the order of the log, and GET /v1/audit's cursor
    ts = fields.BigIntField(db_index=True)  # ms
    actor = fields.CharField(max_length=80)  # "admin", X-Imgate-Actor, "cli:{user}@{host}", "signal", "imgate"
    action = fields.CharField(max_length=64, db_index=True)  # "user.create", "token.revoke", "settings.reload", …
    target = fields.CharField(max_length=200, default="")  # the uid, conv, key it is about ("": none)
    detail = fields.TextField(default="{}")  # a JSON object, at most MAX_DETAIL characters, no secrets
    source = fields.CharField(max_length=64, default="")  # the client's address; "cli", "signal", "start-up"
    status = fields.IntField(null=True)  # the HTTP status answered (a refused attempt too); null: not HTTP

    class Meta:
        table = "audit_log"
