#!/usr/bin/env python3
"""An echo bot for imgate (docs/bots.md): connects like a device with the bot's token and
answers every text sent to it in a 1:1 with "echo: <text>" (in a group, only when mentioned).

    IMGATE_HOST=127.0.0.1 IMGATE_PORT=1883 BOT_UID=echo BOT_TOKEN=imt_... python echo_bot.py

Needs only aiomqtt (pip install aiomqtt). Prints "ready" once subscribed. Each answer's cid is
made from the message it answers, so a message seen twice (a reconnect) is answered once: the
server acknowledges the repeated cid with the stored answer and delivers nothing again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

import aiomqtt

log = logging.getLogger("echo-bot")


def answer(me: str, msg: dict) -> dict | None:
    """The send that answers ``msg`` (a delivery on ``im/{me}/in/msg``), or None."""
    if msg.get("from") == me or msg.get("bot") or msg.get("type") != "text":
        return None  # its own messages (its other devices' copies), other bots (no loops), non-text
    conv = str(msg.get("conv", ""))
    send = {"cid": f"echo-{msg['id']}", "type": "text", "text": f"echo: {msg.get('text', '')}"[:4000],
            "reply_to": msg["id"]}
    if conv.startswith("d:"):
        return {**send, "to": msg["from"]}
    if conv.startswith("g:") and me in (msg.get("mentions") or []):
        return {**send, "group": conv[2:]}
    return None


async def run(host: str, port: int, uid: str, token: str, device: str) -> None:
    backoff = 1.0
    while True:
        try:
            async with aiomqtt.Client(host, port, username=uid, password=token, identifier=f"{uid}:{device}",
                                      clean_session=False, keepalive=30) as client:
                await client.subscribe(f"im/{uid}/in/msg", qos=1)
                await client.subscribe(f"im/{uid}/in/ack", qos=1)
                print("ready", flush=True)
                backoff = 1.0
                async for message in client.messages:
                    if not isinstance(message.payload, (bytes, bytearray)):
                        continue
                    body = json.loads(message.payload)
                    if str(message.topic).endswith("/in/ack"):
                        if "error" in body:  # rate_limited, forbidden...: logged; a real bot might retry
                            log.warning("send %s refused: %s", body.get("cid"), body["error"])
                        continue
                    reply = answer(uid, body)
                    if reply is not None:
                        await client.publish(f"im/{uid}/out/msg", json.dumps(reply), qos=1)
        except aiomqtt.MqttError as exc:
            log.warning("disconnected (%s); again in %.0f s", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    env = os.environ
    try:
        asyncio.run(run(env.get("IMGATE_HOST", "127.0.0.1"), int(env.get("IMGATE_PORT", "1883")), env["BOT_UID"],
                        env["BOT_TOKEN"], env.get("BOT_DEVICE", "srv")))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
