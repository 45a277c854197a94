"""SearchService: users search the history they may see (filters applied here, from the
membership table, never from the client). Indexing follows the durable message-event queue, so
a crash or an index outage loses nothing: it catches up; ``reindex`` rebuilds from the database."""

from __future__ import annotations

from services.conversations.models import Member
from services.errors import BadRequest
from services.messages.events import EventQueue
from services.messages.models import Message
from services.search.embedded import Doc, EmbeddedSearch, Window
from services.search.terms import query_terms

_INDEXED_TYPES = ("text",)


class SearchService:
    def __init__(self, backend: EmbeddedSearch, events: EventQueue | None = None) -> None:
        self._backend = backend
        self._events = events or EventQueue()

    async def index_pending(self, limit: int = 500) -> int:
        """Index the next stored messages from the queue. Returns how many events it took."""
        events = await self._events.read("search", limit)
        if not events:
            return 0
        rows = await Message.filter(id__in=[e.message_id for e in events], type__in=_INDEXED_TYPES)
        await self._backend.add([Doc(m.id, m.conv, m.seq, m.sender, m.ts, m.text or "") for m in rows])
        await self._events.done("search", events[-1].id)
        return len(events)

    async def remove(self, message_id: str) -> None:
        """A recalled message disappears from results."""
        await self._backend.remove([message_id])

    async def reindex(self, batch: int = 1000) -> int:
        """Rebuild the index from the messages table. Returns how many messages were indexed."""
        await self._backend.clear()
        count, last = 0, ""
        while True:
            rows = await Message.filter(id__gt=last, type__in=_INDEXED_TYPES).order_by("id").limit(batch)
            if not rows:
                return count
            await self._backend.add([Doc(m.id, m.conv, m.seq, m.sender, m.ts, m.text or "") for m in rows])
            count += len(rows)
            last = rows[-1].id

    async def search(self, uid: str, q: str, *, conv: str | None = None, sender: str | None = None,
                     since: int | None = None, until: int | None = None, limit: int = 20) -> list[Doc]:
        """Best matches first, among the messages ``uid`` may see (its conversations, from its
        join point, up to its removal).

        Raises:
            BadRequest: an empty query, one over 200 characters, or one with nothing to search for.
        """
        if not q.strip() or len(q) > 200:
            msg = "q must be 1-200 characters"
            raise BadRequest(msg)
        terms = query_terms(q)
        if not terms:
            msg = "q has no letters or digits to search for"
            raise BadRequest(msg)
        query = Member.filter(uid=uid)
        if conv is not None:
            query = query.filter(conv_id=conv)
        windows = [Window(m.conv_id, m.joined_seq, m.left_seq) for m in await query]  # type: ignore[attr-defined]
        return await self._backend.search(terms, windows, sender=sender, since=since, until=until, limit=limit)

    def close(self) -> None:
        self._backend.close()
