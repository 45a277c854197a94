"""PresenceService: the last known presence of every device, fed from the broker's
retained ``presence/{uid}/{device}`` topics by the bridge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from tortoise.exceptions import IntegrityError

from services.presence.models import DevicePresence


@dataclass(frozen=True, slots=True)
class DeviceState:
    device: str
    online: bool
    platform: str
    ts: int
    uid: str = ""
    conn: str = ""  # the broker's name for the connection that made it online, when it gives one


class PresenceService:
    async def record(self, uid: str, device: str, *, online: bool, platform: str, ts: int, conn: str = "") -> bool:
        """Store a device's presence unless a newer one is already stored (out-of-order safe).
        ``conn``: the broker's name for the connection. Online, it is remembered; offline, it
        applies only while the stored state is that connection's (a device that reconnected
        before its old connection was seen closing stays online). True if stored."""
        values: dict[str, Any] = {"online": online, "platform": platform, "ts": ts}
        if conn and online:
            values["conn"] = conn
        match: dict[str, Any] = {"uid": uid, "device": device, "ts__lte": ts}
        if conn and not online:
            match["conn"] = conn
        if await DevicePresence.filter(**match).update(**values):
            return True
        if await DevicePresence.exists(uid=uid, device=device):
            return False  # a newer state is stored, or another connection's
        try:
            await DevicePresence.create(uid=uid, device=device, **values)
        except IntegrityError:  # created concurrently: apply ours if it is newer
            return bool(await DevicePresence.filter(**match).update(**values))
        return True

    async def connection_closed(self, conn: str, ts: int) -> list[DeviceState]:
        """Mark offline the devices whose stored state is connection ``conn``'s (cluster mode:
        RabbitMQ tells only the connection's id when it closes). Returns their new states."""
        rows = await DevicePresence.filter(conn=conn, online=True, ts__lte=ts)
        gone: list[DeviceState] = []
        for r in rows:
            if await DevicePresence.filter(id=r.id, conn=conn, online=True).update(online=False, ts=ts):
                gone.append(DeviceState(r.device, False, r.platform, ts, uid=r.uid))
        return gone

    async def lookup(self, uids: list[str]) -> dict[str, list[DeviceState]]:
        rows = await DevicePresence.filter(uid__in=uids).order_by("uid", "device")
        out: dict[str, list[DeviceState]] = {uid: [] for uid in uids}
        for r in rows:
            out[r.uid].append(DeviceState(r.device, r.online, r.platform, r.ts))
        return out

    async def online_uids(self, uids: set[str]) -> set[str]:
        """The subset of ``uids`` with at least one device online."""
        if not uids:
            return set()
        rows = await DevicePresence.filter(uid__in=list(uids), online=True).values_list("uid", flat=True)
        return set(cast("list[str]", rows))

    async def online_devices(self, uids: list[str]) -> list[tuple[str, str]]:
        """(uid, device) of every device of ``uids`` online now."""
        rows = await DevicePresence.filter(uid__in=uids, online=True).values_list("uid", "device")
        return [(str(u), str(d)) for u, d in rows]

    async def online_page(self, *, uid: str | None = None, limit: int = 100) -> tuple[list[DeviceState], int]:
        """The devices online now (of ``uid``, or everyone's), the first ``limit`` in (uid,
        device) order, and how many there are in all: the live connections where the process
        has no broker of its own (cluster mode's ``imgate api``)."""
        query = DevicePresence.filter(online=True)
        if uid is not None:
            query = query.filter(uid=uid)
        rows = await query.order_by("uid", "device").limit(limit)
        total = await query.count()
        return [DeviceState(r.device, True, r.platform, r.ts, uid=r.uid, conn=r.conn) for r in rows], total

    async def mark_all_offline(self, ts: int) -> int:
        """A freshly started embedded broker has no connections: nobody is online."""
        return await DevicePresence.filter(online=True).update(online=False, ts=ts)

    # ---- privacy (services/privacy) ------------------------------------------------------------
    @staticmethod
    async def export_user(uid: str) -> list[dict[str, Any]]:
        """The user's devices' last known presence, as records of the export archive."""
        return [{"kind": "presence", "device": r.device, "online": r.online, "platform": r.platform, "ts": r.ts}
                for r in await DevicePresence.filter(uid=uid).order_by("device")]

    @staticmethod
    async def erase_user(uid: str) -> int:
        """Forget the user's devices' presence. Returns how many rows went."""
        return int(await DevicePresence.filter(uid=uid).delete())
