"""What the search service needs of an index backend (embedded SQLite FTS5, or Meilisearch), and
the documents and visibility windows it hands them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.conversations.window import Window
from services.errors import Unavailable

__all__ = ["Doc", "SearchBackend", "SearchUnavailable", "Window"]


@dataclass(frozen=True, slots=True)
class Doc:
    id: str
    conv: str
    seq: int
    sender: str
    ts: int
    text: str
    thread: str | None = None  # a thread reply's root id (a hit says which thread it is in)


class SearchUnavailable(Unavailable):
    """The search backend cannot be reached (or failed): the searcher is told; messaging goes on,
    and indexing catches up when it is back."""


class SearchBackend(Protocol):
    async def start(self) -> None:
        """Create the index and apply its settings (idempotent; retried until it succeeds)."""

    async def add(self, docs: list[Doc]) -> None:
        """Add or replace documents by id; durable in the index when it returns."""

    async def remove(self, ids: list[str]) -> None: ...

    async def clear(self) -> None: ...

    async def search(self, terms: list[str], windows: list[Window], *, sender: str | None, since: int | None,
                     until: int | None, limit: int) -> list[Doc]:
        """Documents matching every term, inside one of ``windows``, best matches first.

        Raises:
            SearchUnavailable: the backend cannot answer now.
        """
        ...

    def close(self) -> None: ...
