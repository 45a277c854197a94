"""NotificationService: system notifications, stored, then delivered once to every device.

Each device has a cursor: the last notification id it was handed. A delivery moves the cursor
from c to n with a conditional update (``WHERE last_id = c``), and only the caller whose update
wins publishes (c, n]: a notification sent while a device reconnects is handed to it once,
whichever path (the send, or the reconnect) gets there first. A device's first cursor starts
where its first token was issued, so a new device gets what was sent since it was registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.errors import BadRequest, NotFound
from services.ids import Clock
from services.notifications.models import Notification, NotificationCursor
from services.presence.service import PresenceService
from services.users.service import UserService

_MAX_BODY_KEYS = 50


@dataclass(frozen=True, slots=True)
class NotificationView:
    id: int
    uid: str
    body: dict[str, Any]
    ts: int


@dataclass(frozen=True, slots=True)
class DeviceDelivery:
    uid: str
    device: str
    notifications: tuple[NotificationView, ...]


class NotificationService:
    def __init__(self, clock: Clock, users: UserService, presence: PresenceService, *, batch: int = 100) -> None:
        self._clock = clock
        self._users = users
        self._presence = presence
        self._batch = batch

    async def send(self, body: dict[str, Any], uids: list[str] | None) -> tuple[int, list[DeviceDelivery]]:
        """Store ``body`` for each of ``uids`` (None: every enabled user). Returns how many were
        stored and what to hand to the devices that are online now.

        Raises:
            BadRequest: an empty or oversized body, or an empty uid list.
            NotFound: a uid that does not exist.
        """
        if not body or len(body) > _MAX_BODY_KEYS:
            msg = f"body must be a non-empty object with at most {_MAX_BODY_KEYS} keys"
            raise BadRequest(msg)
        if uids is None:
            targets = await self._users.enabled_uids()
        else:
            targets = list(dict.fromkeys(uids))
            if not targets:
                msg = "give at least one uid (or send to everyone)"
                raise BadRequest(msg)
            known = await self._users.existing_uids(targets)
            missing = [u for u in targets if u not in known]
            if missing:
                msg = f"user {missing[0]!r} does not exist"
                raise NotFound(msg)
        now = self._clock.now_ms()
        await Notification.bulk_create([Notification(uid=u, body=body, created_at=now) for u in targets],
                                       batch_size=1000)
        online = await self._presence.online_devices(targets)
        deliveries = []
        for uid, device in online:
            delivery = await self.claim(uid, device)
            if delivery is not None:
                deliveries.append(delivery)
        return len(targets), deliveries

    async def claim(self, uid: str, device: str) -> DeviceDelivery | None:
        """Take the notifications after the device's cursor for delivery (None: nothing, or
        another caller took them)."""
        cursor = await self._cursor(uid, device)
        if cursor is None:
            return None
        start = cursor.last_id
        rows = await Notification.filter(uid=uid, id__gt=start).order_by("id").limit(self._batch)
        if not rows:
            return None
        end = rows[-1].id
        if not await NotificationCursor.filter(id=cursor.id, last_id=start).update(last_id=end):
            return None  # someone else delivered this range
        return DeviceDelivery(uid, device, tuple(NotificationView(r.id, r.uid, r.body, r.created_at) for r in rows))

    async def _cursor(self, uid: str, device: str) -> NotificationCursor | None:
        cursor = await NotificationCursor.get_or_none(uid=uid, device=device)
        if cursor is not None:
            return cursor
        registered = await self._users.device_registered_at(uid, device)
        if registered is None:
            return None  # not a registered device
        before = await Notification.filter(uid=uid, created_at__lt=registered).order_by("-id").first()
        await NotificationCursor.bulk_create(
            [NotificationCursor(uid=uid, device=device, last_id=before.id if before else 0)], ignore_conflicts=True)
        return await NotificationCursor.get(uid=uid, device=device)

    # ---- privacy (services/privacy) ------------------------------------------------------------
    @staticmethod
    async def erase_user(uid: str) -> int:
        """Delete the user's notifications and their devices' cursors. Returns how many notifications went."""
        await NotificationCursor.filter(uid=uid).delete()
        return int(await Notification.filter(uid=uid).delete())
