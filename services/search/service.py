"""SearchService: users search the history they may see (filters applied here, from the
membership table, never from the client). Indexing follows the durable message-event queue
(a stored message and a recall each write an event), so a crash or an index outage loses
nothing: it catches up; ``reindex`` rebuilds from the database. Hits are checked against the
database before they are returned, so a recalled message never shows, even before the index
has caught up with the recall."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from services.conversations.service import ConversationService
from services.conversations.window import Window
from services.errors import BadRequest
from services.events.queue import EventQueue
from services.messages.commands import StoredMessage
from services.messages.service import MessageService
from services.search.base import Doc, SearchBackend, SearchUnavailable
from services.search.terms import covers, query_terms

_INDEXED_TYPES = ("text",)


class SearchService:
    def __init__(self, backend: SearchBackend, messages: MessageService, conversations: ConversationService,
                 events: EventQueue | None = None, *, batch: int = 500) -> None:
        self.backend = backend
        self._messages = messages
        self._conversations = conversations
        self._events = events or EventQueue()
        self._batch = batch
        self.indexed = 0  # documents added or removed, for /metrics
        self.available = True  # the backend answered the last call (for /metrics)

    @contextmanager
    def _watch(self, *, up_on_success: bool = True) -> Iterator[None]:
        try:
            yield
        except SearchUnavailable:
            self.available = False
            raise
        if up_on_success:
            self.available = True

    async def index_pending(self) -> int:
        """Index the next stored messages from the queue, and remove recalled ones; the offset
        moves only once the backend holds the result. Returns how many events it took.

        Raises:
            SearchUnavailable: the backend is down (the same events are taken again later).
        """
        with self._watch(up_on_success=False):  # a no-op once started: it proves nothing
            await self.backend.start()
        events = await self._events.read("search", self._batch)
        if not events:
            return 0
        rows = (await self._messages.by_ids(list({e.message_id for e in events}))).values()
        docs = [_doc(m) for m in rows if m.type in _INDEXED_TYPES]
        gone = [m.id for m in rows if m.type in ("recalled", "expired")]  # (an expired one: messages/expiry.py)
        with self._watch(up_on_success=bool(docs or gone)):
            await self.backend.remove(gone)
            await self.backend.add(docs)
        await self._events.done("search", events[-1].id)
        self.indexed += len(docs) + len(gone)
        return len(events)

    async def backlog(self) -> int:
        """Stored messages (and recalls) the index has not taken yet, for /metrics."""
        return await self._events.pending("search")

    async def reindex(self, batch: int = 1000) -> int:
        """Rebuild the index from the messages table. Returns how many messages were indexed."""
        await self.backend.start()
        await self.backend.clear()
        count, last = 0, ""
        while True:
            rows = await self._messages.scan(last, _INDEXED_TYPES, batch)
            if not rows:
                return count
            await self.backend.add([_doc(m) for m in rows])
            count += len(rows)
            last = rows[-1].id

    async def search(self, uid: str, q: str, *, conv: str | None = None, sender: str | None = None,
                     since: int | None = None, until: int | None = None, limit: int = 20) -> list[Doc]:
        """Best matches first, among the messages ``uid`` may see (its conversations, from its
        join point, up to its removal).

        Raises:
            BadRequest: an empty query, one over 200 characters, or one with nothing to search for.
            SearchUnavailable: the backend is down.
        """
        if not q.strip() or len(q) > 200:
            msg = "q must be 1-200 characters"
            raise BadRequest(msg)
        terms = query_terms(q)
        if not terms:
            msg = "q has no letters or digits to search for"
            raise BadRequest(msg)
        windows = await self._conversations.windows(uid, conv)
        with self._watch():  # a few more than asked, for the hits the checks below drop
            hits = await self.backend.search(terms, windows, sender=sender, since=since, until=until,
                                             limit=min(2 * limit, 200))
        # What the backend was asked is checked again here, exactly. Meilisearch compares filter
        # strings without regard to case (conv "d:Alice:bob" passes a filter for "d:alice:bob"),
        # matches the last query word as a prefix and reads only 10 query words.
        by_conv: dict[str, list[Window]] = {}
        for w in windows:
            by_conv.setdefault(w.conv, []).append(w)
        hits = [h for h in hits if _visible(h, by_conv.get(h.conv, [])) and (sender is None or h.sender == sender)
                and (since is None or h.ts >= since) and (until is None or h.ts < until)
                and covers(h.text, terms)]
        if not hits:
            return []
        live = await self._messages.by_ids([h.id for h in hits])
        return [h for h in hits if h.id in live and live[h.id].type in _INDEXED_TYPES][:limit]

    async def forget(self, ids: list[str]) -> None:
        """Remove these messages from the index now (an erasure, services/privacy; their
        tombstones' events remove them again where the indexer runs).

        Raises:
            SearchUnavailable: the backend is down.
        """
        if ids:
            with self._watch():
                await self.backend.start()
                await self.backend.remove(ids)

    def close(self) -> None:
        self.backend.close()


def _doc(m: StoredMessage) -> Doc:
    return Doc(m.id, m.conv, m.seq, m.sender, m.ts, m.text or "", m.thread)


def _visible(doc: Doc, windows: list[Window]) -> bool:
    return any(w.contains(doc.seq) for w in windows)
