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


class PresenceService:
    async def record(self, uid: str, device: str, *, online: bool, platform: str, ts: int) -> None:
        """Store a device's presence unless a newer one is already stored (out-of-order safe)."""
        values: dict[str, Any] = {"online": online, "platform": platform, "ts": ts}
        if await DevicePresence.filter(uid=uid, device=device, ts__lte=ts).update(**values):
            return
        if await DevicePresence.exists(uid=uid, device=device):
            return  # a newer state is stored
        try:
            await DevicePresence.create(uid=uid, device=device, **values)
        except IntegrityError:  # created concurrently: apply ours if it is newer
            await DevicePresence.filter(uid=uid, device=device, ts__lte=ts).update(**values)

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

    async def mark_all_offline(self, ts: int) -> int:
        """A freshly started embedded broker has no connections: nobody is online."""
        return await DevicePresence.filter(online=True).update(online=False, ts=ts)
