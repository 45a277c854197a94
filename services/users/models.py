"""Users, device tokens and the auth change log (tortoise models)."""

from tortoise import fields
from tortoise.models import Model


class User(Model):
    uid = fields.CharField(max_length=64, primary_key=True)
    name = fields.CharField(max_length=128, default="")
    disabled = fields.BooleanField(default=False)
    created_at = fields.BigIntField()
    # "user" or "bot" (set at creation, never changed: the bridges cache it; docs/bots.md).
    kind = fields.CharField(max_length=8, default="user", db_index=True)
    # A bot's own message bucket (per second, burst); None: limits.bot_messages_per_s / _burst.
    messages_per_s = fields.FloatField(null=True)
    messages_burst = fields.IntField(null=True)
    # Erased (GDPR art. 17, docs/privacy.md): the row stays, disabled and nameless, so the uid is
    # never given to someone else and others' history still names a sender.
    erased_at = fields.BigIntField(null=True)

    class Meta:
        table = "users"


class DeviceToken(Model):
    """An access token for one device of one user; only its SHA-256 is stored."""

    id = fields.BigIntField(primary_key=True)
    uid = fields.CharField(max_length=64, db_index=True)
    device = fields.CharField(max_length=32)
    platform = fields.CharField(max_length=32, default="")
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.BigIntField()
    expires_at = fields.BigIntField(null=True, db_index=True)  # cluster mode closes connections as they pass
    revoked_at = fields.BigIntField(null=True)
    encoding = fields.CharField(max_length=8, default="json")  # the device's payloads: json, cbor, msgpack
    # The last successful login with it (ms), written at most once a minute per token, in batches
    # (UserService.record_token_use): None until first used.
    last_used_at = fields.BigIntField(null=True)

    class Meta:
        table = "device_tokens"


class AuthEvent(Model):
    """Append-only log of revocations and disables, read by every broker to kick live sessions."""

    id = fields.BigIntField(primary_key=True)
    uid = fields.CharField(max_length=64)
    device = fields.CharField(max_length=32, null=True)  # None: every device of the user
    kind = fields.CharField(max_length=16)  # "revoke" | "disable"
    ts = fields.BigIntField()

    class Meta:
        table = "auth_events"
