"""Forwarding (docs/protocol.md, "Forwarding"): a send with ``forward`` (message ids) stores a
copy of one message, or with ``merge`` one ``merged`` message holding up to ten messages of one
conversation, in the conversation it is sent to.

A forward is a send like any other (the ack, the cid's idempotence, the rate, blocks and the
target's membership are the send's); what is here is only the copy, made in the send's own
transaction: the sources are read, the forwarder's windows of their conversation checked, and
the copy says where it came from (``forwarded``: the original sender, the kind of conversation,
the original time), never the source conversation or message id. A plain send runs none of this.

Attachments are shared, not copied: a forwarded attachment message refers to the same upload
keys in its ``file_key``/``thumb_key`` columns, and a merged message, which may hold several, has
its keys in ``message_files``; both are what ``referenced_keys`` and ``readable_keys`` read, so
the bytes stay while any message refers to them and the new conversation's members may download
them. A recall of the original releases only the original's references.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from services.attachments.service import refs
from services.conversations.window import Window
from services.errors import BadRequest, Forbidden, ImError, NotFound
from services.messages.commands import ATTACHMENT_TYPES, SendCommand, StoredMessage
from services.sql import AnyOf, Many, Program, Query, json_value

MAX_MERGE = 10  # messages one merged message may hold
# What may be forwarded: never a tombstone, a membership event, or anything the server writes.
FORWARDABLE = frozenset(("text", "custom", "merged", *ATTACHMENT_TYPES))
# A payload nests at most 32 levels of maps and arrays (protocol "Encodings", bridge.formats
# MAX_DEPTH), a custom message's data 31 of them; in a merged message it sits 3 levels deeper.
MERGED_DATA_DEPTH = 32 - 4
# The conversation service's: the windows of (conv, uid) members, in the caller's transaction.
WindowsSql = Callable[[set[tuple[str, str]]], Program[dict[tuple[str, str], Window]]]


def kind_of(conv: str) -> str:
    return "group" if conv.startswith("g:") else "direct"


@dataclass(frozen=True, slots=True)
class _Source:
    id: str
    conv: str
    seq: int
    sender: str
    type: str
    text: str | None
    data: dict[str, Any] | None
    ts: int
    forwarded: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Copy:
    """What a forward stores: the copy's type, text, data and origin, and the upload keys it refers
    to (for a merged message, its ``message_files`` rows)."""

    type: str
    text: str | None
    data: dict[str, Any] | None
    forwarded: dict[str, Any] | None
    keys: tuple[str, ...]

    def of(self, message: StoredMessage) -> StoredMessage:
        """``message`` (numbered and timed by the send) with the copy's content."""
        return replace(message, type=self.type, text=self.text, data=self.data, forwarded=self.forwarded)

    def file_rows(self, msg_id: str) -> list[tuple[str, str]]:
        """A merged message's ``message_files`` rows (a copy of one message uses the columns)."""
        return [(msg_id, k) for k in self.keys] if self.type == "merged" else []


def _keys(type_: str, data: dict[str, Any] | None) -> tuple[str, ...]:
    """The upload keys of a message's content (an attachment's, or a merged message's items')."""
    if type_ in ATTACHMENT_TYPES:
        return tuple(f.key for f in refs(data))
    if type_ == "merged" and data is not None:
        return tuple(dict.fromkeys(f.key for item in data.get("messages", ()) if item.get("type") in ATTACHMENT_TYPES
                                   for f in refs(item.get("attachment"))))
    return ()


def _deeper(value: Any, limit: int) -> bool:
    """Do ``value``'s maps and arrays nest more than ``limit`` levels? (Iterative: any depth.)"""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return False


def _item(s: _Source) -> dict[str, Any]:
    """One message of a merged message, as the wire renders it: who, what, when."""
    item: dict[str, Any] = {"from": s.sender, "type": s.type, "ts": s.ts}
    if s.text is not None:
        item["text"] = s.text
    if s.data is not None:
        item["attachment" if s.type in ATTACHMENT_TYPES else "data"] = s.data
    if s.forwarded is not None:
        item["forwarded"] = s.forwarded
    return item


def _copy(cmd: SendCommand, sources: dict[str, _Source], windows: dict[tuple[str, str], Window]) -> Copy | ImError:
    found = []
    for msg_id in cmd.forward:
        s = sources.get(msg_id)
        window = windows.get((s.conv, cmd.sender)) if s is not None else None
        # Unknown, outside the forwarder's window, recalled or a membership event: all alike.
        if s is None or window is None or s.type not in FORWARDABLE or not window.contains(s.seq):
            return NotFound(f"forward: no message {msg_id!r} to forward")
        if window.upto is not None:  # it reads its history still, but may no longer download its files
            return Forbidden("forward: only current members forward from a conversation")
        found.append(s)
    if len({s.conv for s in found}) > 1:
        return BadRequest("forward: the messages merged must all be of one conversation")
    if not cmd.merge:
        s = found[0]
        origin = s.forwarded or {"from": s.sender, "kind": kind_of(s.conv), "ts": s.ts}  # a forward's first origin
        return Copy(s.type, s.text, s.data, origin, _keys(s.type, s.data))
    if any(s.type == "merged" for s in found):
        return BadRequest("forward: a merged message is not merged again (forward it alone)")
    if any(s.type == "custom" and _deeper(s.data, MERGED_DATA_DEPTH) for s in found):
        return BadRequest(f"forward: a custom message nested more than {MERGED_DATA_DEPTH} levels is forwarded alone")
    found.sort(key=lambda s: s.seq)  # the conversation's order, whatever the order of the ids
    data = {"kind": kind_of(found[0].conv), "messages": [_item(s) for s in found]}
    return Copy("merged", None, data, None, _keys("merged", data))


def copies_sql(cmds: list[SendCommand], windows_sql: WindowsSql, now: int
               ) -> Program[dict[tuple[str, str], Copy | ImError]]:
    """The copy each forward of ``cmds`` stores, or why it may not, by (sender, cid): the sources
    (one query), the forwarders' windows of their conversations (``windows_sql``, the
    conversation service's, one query), in the send's transaction. A disappearing message whose
    time has come (``now``) is gone, swept or not: not forwarded."""
    ids = sorted({i for c in cmds for i in c.forward})
    rows = yield Query("SELECT id, conv, seq, sender, type, text, data, ts, forwarded, expires_at FROM messages "
                       "WHERE id = ANY(?)", [AnyOf(ids)])
    sources = {r[0]: _Source(r[0], r[1], r[2], r[3], r[4], r[5], json_value(r[6]), r[7], json_value(r[8]))
               for r in rows if r[9] is None or r[9] > now}
    windows = yield from windows_sql({(sources[i].conv, c.sender) for c in cmds for i in c.forward if i in sources})
    return {(c.sender, c.cid): _copy(c, sources, windows) for c in cmds}


def files_sql(rows: list[tuple[str, str]]) -> Program[None]:
    """A merged message's upload keys (``message_files``), in the transaction storing it."""
    yield Many("INSERT INTO message_files (message_id, key) VALUES (?, ?)", rows)


def unfile_sql(*msg_ids: str) -> Program[list[str]]:
    """Recalled or expired merged messages' ``message_files`` rows go; returns their keys (to release)."""
    rows = yield Query("SELECT key FROM message_files WHERE message_id = ANY(?)", [AnyOf(list(msg_ids))])
    if rows:
        yield Query("DELETE FROM message_files WHERE message_id = ANY(?)", [AnyOf(list(msg_ids))])
    return [r[0] for r in rows]


MERGED_FILES_SQL = ("SELECT messages.conv, messages.seq, message_files.key FROM message_files "
                    "JOIN messages ON messages.id = message_files.message_id WHERE message_files.key = ANY(?)")
