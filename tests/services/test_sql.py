"""``?`` placeholders become PostgreSQL's ``$n`` only where they are placeholders."""

from __future__ import annotations

import pytest

from services.db import to_numbered


@pytest.mark.parametrize(("query", "expected"), [
    ("SELECT * FROM t WHERE a = ? AND b IN (?, ?)", "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)"),
    ("SELECT '?' FROM t WHERE a = ?", "SELECT '?' FROM t WHERE a = $1"),  # before: '$1' and $2
    ("SELECT 'it''s ?', \"col?\" FROM t WHERE a = ?", "SELECT 'it''s ?', \"col?\" FROM t WHERE a = $1"),
    ("SELECT x -- why?\nFROM t WHERE a = ?", "SELECT x -- why?\nFROM t WHERE a = $1"),
    ("SELECT x /* ? and\n ? */ FROM t WHERE a = ?", "SELECT x /* ? and\n ? */ FROM t WHERE a = $1"),
    ("SELECT 1", "SELECT 1"),
])
def test_only_placeholders_are_numbered(query: str, expected: str) -> None:
    assert to_numbered(query) == expected
