"""Wire shapes (protocol §3–§4): pydantic models at the edge, and the renderers of outgoing JSON."""

from __future__ import annotations

from collections.abc import Container
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.attachments.store import KEY_RE, MAX_KEYS, MIME_RE, SHA256_RE
from services.ids import DEVICE_RE, UID_RE
from services.messages.commands import ATTACHMENT_TYPES, StoredMessage

_UID = UID_RE.pattern
_GID = r"^[A-Za-z0-9_-]{1,64}$"
_MENTION = r"^([A-Za-z0-9_-]{1,64}|@all)$"  # a uid (UID_RE) or @all
_MSG_ID = r"^[0-9A-HJKMNP-TV-Z]{26}$"  # a message id (ULID)


class _In(BaseModel):
    # strict: "42" is not 42. Unknown fields are ignored so older servers accept newer clients.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


_KEY = KEY_RE.pattern
_MIME = MIME_RE.pattern
_SHA256 = SHA256_RE.pattern
# No control characters, no path, no bidirectional overrides ("gpj.exe" shown as "exe.jpg").
_FILE_NAME = r"^[^\x00-\x1f\x7f/\\\u202a-\u202e\u2066-\u2069]{1,255}$"


class ThumbnailIn(_In):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    key: str = Field(pattern=_KEY)
    mime: str = Field(pattern=r"^image/(png|jpeg|gif|webp)$")
    size: int = Field(ge=1)
    sha256: str = Field(pattern=_SHA256)
    width: int | None = Field(None, ge=1, le=100_000)
    height: int | None = Field(None, ge=1, le=100_000)


class AttachmentIn(_In):
    """An attachment (protocol §3): an upload's ``key`` (checked against the object), or an
    external https ``url`` (not checked: shown as a link)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    key: str | None = Field(None, pattern=_KEY)
    url: str | None = Field(None, max_length=2000, pattern=r"^https://[^\s\x00-\x1f\x7f\"'<>]+$")
    mime: str = Field(pattern=_MIME)
    size: int = Field(ge=1)
    sha256: str = Field(pattern=_SHA256)
    name: str | None = Field(None, pattern=_FILE_NAME)
    width: int | None = Field(None, ge=1, le=100_000)
    height: int | None = Field(None, ge=1, le=100_000)
    duration: float | None = Field(None, ge=0, le=1e7)  # seconds (audio, video)
    thumbnail: ThumbnailIn | None = None

    @model_validator(mode="after")
    def _where(self) -> AttachmentIn:
        if (self.key is None) == (self.url is None):
            msg = "exactly one of 'key' or 'url' is required"
            raise ValueError(msg)
        return self


class SendIn(_In):
    cid: str = Field(min_length=1, max_length=64)
    to: str | None = Field(None, pattern=_UID)
    group: str | None = Field(None, pattern=_GID)
    type: Literal["text", "custom", "image", "file", "audio", "video"]
    text: str | None = None  # a text message's text; an attachment's caption
    data: dict[str, Any] | None = None
    attachment: AttachmentIn | None = None
    # Uids, or "@all" (a group's every member): at most 100, each at most 64 characters.
    mentions: list[Annotated[str, Field(pattern=_MENTION)]] | None = Field(None, max_length=100)
    reply_to: str | None = Field(None, pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")  # a message id (ULID)
    thread: str | None = Field(None, pattern=_MSG_ID)  # the root of the thread it replies in
    at: int | None = Field(None, ge=0, le=1 << 53)  # a scheduled send: when (ms since the epoch)

    @model_validator(mode="after")
    def _shape(self) -> SendIn:
        if (self.to is None) == (self.group is None):
            msg = "exactly one of 'to' or 'group' is required"
            raise ValueError(msg)
        if self.type == "text" and (self.text is None or self.text == ""):
            msg = "type 'text' needs a non-empty 'text'"
            raise ValueError(msg)
        if self.type == "custom" and self.data is None:
            msg = "type 'custom' needs a 'data' object"
            raise ValueError(msg)
        if self.type in ATTACHMENT_TYPES:
            if self.attachment is None:
                msg = f"type {self.type!r} needs an 'attachment' object"
                raise ValueError(msg)
            if self.type in ("image", "audio", "video") and not self.attachment.mime.startswith(f"{self.type}/"):
                msg = f"type {self.type!r} needs a {self.type}/* mime"
                raise ValueError(msg)
        return self


_ULID = r"^[0-9A-HJKMNP-TV-Z]{26}$"
MAX_FORWARD = 10  # messages one merged forward holds (services/messages/forwards.py MAX_MERGE)
# What a forward carries of its own: where it goes and its cid; the rest is the original's.
NOT_IN_A_FORWARD = ("type", "text", "data", "attachment", "mentions", "reply_to", "thread")


class ForwardIn(_In):
    """A send with ``forward`` (protocol §3, forwarding): one message, or with ``merge`` up to
    ten of one conversation as one ``merged`` message. A repeated id counts once."""

    cid: str = Field(min_length=1, max_length=64)
    to: str | None = Field(None, pattern=_UID)
    group: str | None = Field(None, pattern=_GID)
    forward: list[Annotated[str, Field(pattern=_ULID)]] = Field(min_length=1, max_length=MAX_FORWARD)
    merge: bool = False

    @model_validator(mode="after")
    def _shape(self) -> ForwardIn:
        if (self.to is None) == (self.group is None):
            msg = "exactly one of 'to' or 'group' is required"
            raise ValueError(msg)
        if len(set(self.forward)) > 1 and not self.merge:
            msg = "several messages are forwarded with merge: true (or one by one)"
            raise ValueError(msg)
        return self


class RpcEnvelope(_In):
    jsonrpc: Literal["2.0"]
    id: int | str | None = None
    method: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)


class HistoryParams(_In):
    conv: str = Field(min_length=1, max_length=140)
    after_seq: int | None = Field(None, ge=0)
    before_seq: int | None = Field(None, ge=1)
    limit: int = Field(50, ge=1, le=200)
    thread: str | None = Field(None, pattern=_MSG_ID)  # a thread's replies instead (its root's id)


class ConversationsParams(_In):
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=300)


class ReadParams(_In):
    conv: str = Field(min_length=1, max_length=140)
    seq: int = Field(ge=0)


class PresenceParams(_In):
    uids: list[str] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _uids(self) -> PresenceParams:
        bad = [u for u in self.uids if not isinstance(u, str) or not UID_RE.match(u)]
        if bad:
            msg = f"invalid uid {bad[0]!r}"
            raise ValueError(msg)
        return self


class GroupCreateParams(_In):
    name: str = Field(min_length=1, max_length=128)
    members: list[str] = Field(default_factory=list, max_length=100_000)


class GroupMembersParams(_In):
    gid: str = Field(pattern=_GID)
    members: list[str] = Field(min_length=1, max_length=100_000)


class GroupParams(_In):
    gid: str = Field(pattern=_GID)


class GroupRoleParams(_In):
    gid: str = Field(pattern=_GID)
    uid: str = Field(pattern=_UID)
    role: Literal["admin", "member"]


class GroupSettingsParams(_In):
    gid: str = Field(pattern=_GID)
    mention_all: Literal["admins", "members"] | None = None  # None: read the settings
    pin: Literal["members", "admins"] | None = None  # who may pin messages; None: unchanged


class RecallParams(_In):
    id: str = Field(min_length=26, max_length=26)


class EditParams(_In):
    id: str = Field(min_length=26, max_length=26)
    text: str = Field(min_length=1, max_length=65536)  # the service checks limits.max_text


class UserParams(_In):
    """Params naming one other user (blocks, contacts)."""

    uid: str = Field(pattern=_UID)


class ProfileGetParams(_In):
    uids: list[str] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _uids(self) -> ProfileGetParams:
        if any(not UID_RE.match(u) for u in self.uids):
            msg = "uids must be user ids"
            raise ValueError(msg)
        return self


# No control characters and no bidirectional overrides or isolates (a display name is shown as it
# is: "\u202eevil" would show another name, reversed, and spill into the text after it).
_PRINTABLE = r"^[^\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]*$"
# An avatar is an https URL or an attachment key: never javascript:, data: or a relative path.
AVATAR_PATTERN = r"^(|https://[^\s\x00-\x1f\x7f\"'<>]{1,500}|[0-9A-HJKMNP-TV-Z]{26}[0-9a-f]{16})$"


class ProfileSetParams(_In):
    name: str | None = Field(None, max_length=64, pattern=_PRINTABLE)
    avatar: str | None = Field(None, max_length=512, pattern=AVATAR_PATTERN)
    status: str | None = Field(None, max_length=140, pattern=_PRINTABLE)

    @model_validator(mode="after")
    def _something(self) -> ProfileSetParams:
        if self.name is None and self.avatar is None and self.status is None:
            msg = "give name, avatar or status"
            raise ValueError(msg)
        return self


class ContactRequestParams(_In):
    uid: str = Field(pattern=_UID)
    text: str = Field("", max_length=200, pattern=_PRINTABLE)


class FileUploadParams(_In):
    name: str = Field("", pattern=r"^$|" + _FILE_NAME)
    mime: str = Field(pattern=_MIME)
    size: int = Field(ge=1)  # the service checks limits.max_attachment_bytes
    sha256: str = Field(pattern=_SHA256)


class FileUrlParams(_In):
    keys: list[str] = Field(min_length=1, max_length=MAX_KEYS)

    @model_validator(mode="after")
    def _keys(self) -> FileUrlParams:
        if any(not isinstance(k, str) or not KEY_RE.match(k) for k in self.keys):
            msg = "keys must be attachment keys"
            raise ValueError(msg)
        return self


class NoParams(_In):
    pass


class ReactionParams(_In):
    id: str = Field(min_length=26, max_length=26)
    # An emoji (or a short code a client maps to one): no spaces or control characters.
    emoji: str = Field(min_length=1, max_length=16, pattern=r"^[^\s\x00-\x1f\x7f]+$")


class PinParams(_In):
    id: str = Field(min_length=26, max_length=26)  # the message
    conv: str | None = Field(None, min_length=1, max_length=140)  # if given, the message's conversation


class PinnedParams(_In):
    conv: str = Field(min_length=1, max_length=140)


class ReadByParams(_In):
    id: str = Field(min_length=26, max_length=26)  # the message
    conv: str | None = Field(None, min_length=1, max_length=140)  # if given, the message's conversation
    cursor: str | None = Field(None, pattern=_UID)  # the previous page's next_cursor
    limit: int = Field(100, ge=1, le=200)


class ThreadsParams(_In):
    conv: str = Field(min_length=1, max_length=140)
    cursor: str | None = Field(None, max_length=64)  # the previous page's next_cursor
    limit: int = Field(20, ge=1, le=100)


class ThreadReadParams(_In):
    conv: str = Field(min_length=1, max_length=140)
    thread: str = Field(pattern=_MSG_ID)  # the root's id
    tseq: int = Field(ge=0)


class ScheduleListParams(_In):
    cursor: str | None = Field(None, max_length=64)  # the previous page's next_cursor
    limit: int = Field(50, ge=1, le=100)


class ScheduleCancelParams(_In):
    id: str = Field(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")  # the schedule's id


class SettingsParams(_In):
    conv: str = Field(min_length=1, max_length=140)
    muted: bool | None = None
    pinned: bool | None = None


class TtlParams(_In):
    """Disappearing messages: a conversation's ttl in seconds (null or 0: off); the service
    checks limits.min_ttl_s / max_ttl_s."""

    conv: str = Field(min_length=1, max_length=140)
    ttl: int | None = Field(ge=0, le=10 * 365 * 86400)  # required (null turns it off)


class NotificationsParams(_In):
    # Optional: the device is the one in the topic ({p}/{uid}/out/rpc/{device}); if given, it must match.
    device: str | None = Field(None, pattern=DEVICE_RE.pattern)


class PushTargetParams(_In):
    platform: Literal["fcm", "apns", "webhook"]
    token: str = Field(min_length=1, max_length=512)


class SearchParams(_In):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True)
    q: str = Field(min_length=1, max_length=200)
    conv: str | None = Field(None, max_length=140)
    sender: str | None = Field(None, alias="from", pattern=_UID)
    since: int | None = Field(None, ge=0)
    until: int | None = Field(None, ge=0)
    limit: int = Field(20, ge=1, le=100)


class TypingIn(_In):
    conv: str = Field(min_length=1, max_length=140)


class PresenceIn(BaseModel):
    """A retained ``presence/{uid}/{device}`` payload (from the broker or a client's will)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    online: bool
    platform: str = Field("", max_length=32)
    ts: int = 0
    persistent: bool = False
    conn: str = Field("", max_length=128)  # cluster mode: the connection (its close means offline)


def describe(exc: ValidationError) -> str:
    """The first validation error as one readable sentence naming the field."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    text = err["msg"].removeprefix("Value error, ")
    return f"{where}: {text}" if where else text


def render_message(m: StoredMessage, bots: Container[str] = ()) -> dict[str, Any]:
    """A message as devices get it; ``bots``: the bots this process knows (a bot's message says
    ``"bot": true``, protocol "Bots")."""
    body: dict[str, Any] = {"id": m.id, "conv": m.conv, "seq": m.seq, "from": m.sender, "cid": m.cid,
                            "type": m.type, "ts": m.ts}
    if m.sender in bots:
        body["bot"] = True
    if m.text is not None:
        body["text"] = m.text
    if m.type in ATTACHMENT_TYPES:
        body["attachment"] = m.data
    elif m.type == "merged":  # its messages (protocol §3, forwarding): keys numbered for CBOR, unlike data's
        body["merged"] = m.data
    elif m.data is not None:
        body["data"] = m.data
    if m.mentions:
        body["mentions"] = list(m.mentions)
    if m.reply is not None:
        body["reply"] = m.reply
    if m.edited_at is not None:
        body["edited_at"] = m.edited_at
    if m.preview is not None:
        body["preview"] = m.preview
    if m.forwarded is not None:
        body["forwarded"] = m.forwarded
    if m.thread is not None:
        body["thread"] = m.thread
        body["tseq"] = m.tseq
    if m.expires_at is not None:
        body["expires_at"] = m.expires_at
    if m.type == "recalled" and m.data is not None:
        body.pop("data", None)
        body["recalled_by"] = m.data.get("by")
    return body


def valid_device(device: str) -> bool:
    return bool(DEVICE_RE.match(device))
