"""What a member may see of a conversation (plain types: the search backends import this)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Window:
    """The messages a member may see: ``after < seq <= upto`` (no upper bound while a member).

    The one definition of membership visibility: history, recall and search ask ``contains``;
    the search backends render ``after`` and ``upto`` as their own filters.
    """

    conv: str
    after: int
    upto: int | None

    @property
    def whole(self) -> bool:
        """The whole conversation (a 1:1, or a group the user was in from its start)."""
        return self.after == 0 and self.upto is None

    def contains(self, seq: int) -> bool:
        return seq > self.after and (self.upto is None or seq <= self.upto)
