"""A small asyncio XMPP client for the benchmarks (no third-party XMPP library).

Client-to-server over plain TCP (RFC 6120, no TLS): stream open, SASL PLAIN, stream restart,
resource binding, a session if the server requires one, optional initial presence. Sends chat
messages that ask for an XEP-0184 delivery receipt, and receipts. Incoming bytes are parsed
incrementally (``xml.etree.ElementTree.XMLPullParser``); each complete top-level stanza is handled
as it arrives, then dropped from the tree. Once connected, every ``<message/>`` goes to the
``on_message`` callback (called on the event loop, in arrival order); presence and IQ are ignored.

    client = XMPPClient("127.0.0.1", 5222, "alice", "localhost", "secret", on_message=print)
    await client.connect()
    client.send_message("bob@localhost", "m1", "hello")
    await client.close()
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from xml.etree.ElementTree import Element, XMLPullParser
from xml.sax.saxutils import escape, quoteattr

NS_STREAM = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_RECEIPTS = "urn:xmpp:receipts"

_MESSAGE = f"{{{NS_CLIENT}}}message"
_PRESENCE = f"{{{NS_CLIENT}}}presence"
_IQ = f"{{{NS_CLIENT}}}iq"
_BODY = f"{{{NS_CLIENT}}}body"
_REQUEST = f"{{{NS_RECEIPTS}}}request"
_RECEIVED = f"{{{NS_RECEIPTS}}}received"
_STREAM_ERROR = f"{{{NS_STREAM}}}error"


class XMPPError(Exception):
    """The server refused something (SASL failure, IQ error, stream error) or the stream ended."""


@dataclass(slots=True)
class Message:
    """An incoming ``<message/>``."""

    sender: str  # the 'from' attribute (a full JID for messages from a client)
    to: str
    id: str
    type: str
    body: str | None
    receipt_request: bool  # has <request xmlns='urn:xmpp:receipts'/>
    receipt_for: str | None  # the id in <received xmlns='urn:xmpp:receipts' id=.../>, if any
    error: str | None  # for type='error': the condition's tag


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_message(el: Element) -> Message:
    received = el.find(_RECEIVED)
    error = None
    if el.get("type") == "error":
        err = el.find(f"{{{NS_CLIENT}}}error")
        error = _local(err[0].tag) if err is not None and len(err) else "error"
    return Message(el.get("from", ""), el.get("to", ""), el.get("id", ""), el.get("type", "normal"),
                   el.findtext(_BODY), el.find(_REQUEST) is not None,
                   received.get("id") if received is not None else None, error)


class _Protocol(asyncio.Protocol):
    def __init__(self, client: XMPPClient) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._lost(exc)


class XMPPClient:
    """One XMPP c2s connection. ``connect`` logs in; afterwards ``on_message`` gets every message."""

    def __init__(self, host: str, port: int, user: str, domain: str, password: str, *, resource: str = "bench",
                 on_message: Callable[[Message], None] | None = None) -> None:
        self.host, self.port = host, port
        self.user, self.domain, self.password, self.resource = user, domain, password, resource
        self.jid = f"{user}@{domain}/{resource}"  # replaced by the bound JID
        self.on_message = on_message
        self._transport: asyncio.Transport | None = None
        self._parser: XMLPullParser[Element] = XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._root: Element | None = None
        self._ready = False
        self._iq_seq = 0
        self._pending: asyncio.Queue[Element | None] = asyncio.Queue()  # stanzas while logging in
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- connection -------------------------------------------------------------------------------

    async def connect(self, *, presence: bool = True, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_connection(lambda: _Protocol(self), self.host, self.port)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._transport = transport
            features = await self._open_stream()
            mechanisms = {m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")}
            if "PLAIN" not in mechanisms:
                msg = f"SASL PLAIN not offered (offered: {sorted(m for m in mechanisms if m)})"
                raise XMPPError(msg)
            token = base64.b64encode(f"\0{self.user}\0{self.password}".encode()).decode()
            self._write(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
            reply = await self._next()
            if reply.tag != f"{{{NS_SASL}}}success":
                msg = f"SASL PLAIN failed for {self.user}: {_local(reply[0].tag) if len(reply) else reply.tag}"
                raise XMPPError(msg)
            features = await self._open_stream()  # the stream restart after SASL
            if features.find(f"{{{NS_BIND}}}bind") is None:
                msg = "the server offers no resource binding"
                raise XMPPError(msg)
            bound = await self._iq(f"<bind xmlns='{NS_BIND}'><resource>{escape(self.resource)}</resource></bind>")
            self.jid = bound.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid") or self.jid
            session = features.find(f"{{{NS_SESSION}}}session")
            if session is not None and session.find(f"{{{NS_SESSION}}}optional") is None:
                await self._iq(f"<session xmlns='{NS_SESSION}'/>")
            if presence:
                # Initial presence; the server reflects it to us once this resource is available
                # (and messages to the bare JID are routed to it).
                self._write("<presence/>")
                while True:
                    el = await self._next()
                    if el.tag == _PRESENCE and el.get("from") == self.jid and el.get("type") is None:
                        break
            self._ready = True
            # Messages that came in while logging in (none expected) are not lost.
            while not self._pending.empty():
                early = self._pending.get_nowait()
                if early is not None:
                    self._dispatch(early)

    async def close(self, timeout: float = 5.0) -> None:
        if self._transport is None:
            return
        if not self._transport.is_closing():
            self._transport.write(b"</stream:stream>")
            self._transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self._transport.abort()
        except OSError:  # the connection was lost (reset) before we closed it: closed all the same
            return

    # -- sending ----------------------------------------------------------------------------------

    def send_message(self, to: str, msg_id: str, body: str, *, receipt: bool = True) -> None:
        """A chat message; with ``receipt``, it asks for an XEP-0184 delivery receipt."""
        request = f"<request xmlns='{NS_RECEIPTS}'/>" if receipt else ""
        self._write(f"<message type='chat' id={quoteattr(msg_id)} to={quoteattr(to)}>"
                    f"<body>{escape(body)}</body>{request}</message>")

    def send_receipt(self, message: Message) -> None:
        """The XEP-0184 receipt for ``message``, to the full JID it came from."""
        self._write(f"<message id={quoteattr('r-' + message.id)} to={quoteattr(message.sender)}>"
                    f"<received xmlns='{NS_RECEIPTS}' id={quoteattr(message.id)}/></message>")

    # -- internals --------------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        if self._transport is None or self._transport.is_closing():
            msg = f"{self.jid}: not connected"
            raise XMPPError(msg)
        self._transport.write(text.encode())

    async def _open_stream(self) -> Element:
        """Open a (new) stream and return the server's <stream:features/>."""
        self._parser = XMLPullParser(events=("start", "end"))
        self._depth, self._root = 0, None
        self._write(f"<?xml version='1.0'?><stream:stream to={quoteattr(self.domain)} xmlns='{NS_CLIENT}' "
                    f"xmlns:stream='{NS_STREAM}' version='1.0'>")
        features = await self._next()
        if features.tag != f"{{{NS_STREAM}}}features":
            msg = f"expected stream features, got {features.tag}"
            raise XMPPError(msg)
        return features

    async def _next(self) -> Element:
        el = await self._pending.get()
        if el is None:
            msg = f"{self.user}: the stream ended while logging in"
            raise XMPPError(msg)
        if el.tag == _STREAM_ERROR:
            msg = f"{self.user}: stream error {[_local(c.tag) for c in el]}"
            raise XMPPError(msg)
        return el

    async def _iq(self, payload: str) -> Element:
        self._iq_seq += 1
        iq_id = f"iq{self._iq_seq}"
        self._write(f"<iq type='set' id='{iq_id}'>{payload}</iq>")
        while True:
            el = await self._next()
            if el.tag == _IQ and el.get("id") == iq_id:
                if el.get("type") != "result":
                    msg = f"{self.user}: IQ {payload[:40]!r} failed: {[_local(c.tag) for c in el]}"
                    raise XMPPError(msg)
                return el

    def _feed(self, data: bytes) -> None:
        self._parser.feed(data)
        for event, item in self._parser.read_events():  # type: ignore[misc]  # (event, Element) for start/end
            el = cast(Element, item)
            if event == "start":
                self._depth += 1
                if self._depth == 1:
                    self._root = el
                continue
            self._depth -= 1
            if self._depth == 1:
                if self._root is not None:
                    self._root.remove(el)  # the stream element would keep every stanza otherwise
                if self._ready:
                    self._dispatch(el)
                else:
                    self._pending.put_nowait(el)
            elif self._depth == 0 and self._transport is not None:  # </stream:stream>
                self._transport.close()

    def _dispatch(self, el: Element) -> None:
        if el.tag == _MESSAGE and self.on_message is not None:
            self.on_message(parse_message(el))
        elif el.tag == _STREAM_ERROR and self._transport is not None:
            self._transport.close()

    def _lost(self, exc: Exception | None) -> None:
        self._pending.put_nowait(None)
        if not self.closed.done():
            if exc is None:
                self.closed.set_result(None)
            else:
                self.closed.set_exception(exc)
                self.closed.exception()  # retrieved: a lost connection is reported by whoever awaits
