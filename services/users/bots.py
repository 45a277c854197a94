"""Bots: users of kind ``bot`` (docs/bots.md), and the directory of them every process keeps in
memory, so that the message path knows a sender's kind and its message bucket without a query.

A user's kind is set when it is created and never changes, so the directory is right about who
is a bot as soon as it has heard of them: from the creation (in this process), from a login with
the bot's token (the login's one query reads the kind too), and from a refresh of every bot's row
(``refresh``, run every ``interval`` by ``follow``), which also brings changes of a bot's limits
made by another process. Bots are few (an operator creates each): the directory holds them all.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("user", "bot")
MAX_BOTS = 100_000  # the directory's bound; past it, a refresh keeps the first (by uid)


@dataclass(frozen=True, slots=True)
class BotLimits:
    """A bot's own message bucket; None: the default (``limits.bot_messages_per_s`` / ``_burst``)."""

    messages_per_s: float | None = None
    messages_burst: int | None = None


class BotDirectory:
    """The bots known to this process: ``uid in directory`` and ``directory.limits(uid)``."""

    def __init__(self) -> None:
        self._bots: dict[str, BotLimits] = {}

    def __contains__(self, uid: object) -> bool:
        return uid in self._bots

    def __len__(self) -> int:
        return len(self._bots)

    def limits(self, uid: str) -> BotLimits | None:
        """The bot's limits (None: ``uid`` is not a bot this process knows of)."""
        return self._bots.get(uid)

    def note(self, uid: str, limits: BotLimits) -> None:
        if uid in self._bots or len(self._bots) < MAX_BOTS:
            self._bots[uid] = limits

    def replace(self, bots: dict[str, BotLimits]) -> None:
        """Every bot, as the database has them now (a refresh)."""
        self._bots = bots
