"""RabbitMQ's management HTTP API, as imgate uses it when RabbitMQ is the MQTT front: closing the
live connections of a user whose token was revoked or who was disabled. (Its HTTP auth backend,
``/auth/rabbitmq/…`` in ``imgate.admin``, refuses their next login; a live MQTT connection is not
asked again.)"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx

log = logging.getLogger("imgate.rabbitmq")


class RabbitManagement:
    """Closes connections through ``DELETE /api/connections/username/{user}`` (immediate; the
    listing of connections lags by the node's statistics interval, so a per-device close found by
    listing could miss a device that has just connected: every connection of the user is closed,
    and the devices whose tokens are still valid log in again)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def close_user(self, uid: str, reason: str) -> int:
        """Close every connection of ``uid`` on the cluster. Returns how many were listed (the
        listing may miss the newest; they are closed all the same).

        Raises:
            httpx.HTTPError: the management API could not be reached or refused.
        """
        path = f"/api/connections/username/{quote(uid, safe='')}"
        listed = await self._client.get(path)
        count = len(listed.json()) if listed.status_code == 200 else 0
        closed = await self._client.delete(path, headers={"X-Reason": reason})
        if closed.status_code not in (204, 404):
            closed.raise_for_status()
        log.info("closed the RabbitMQ connections of %s (%s): %d listed", uid, reason, count)
        return count
