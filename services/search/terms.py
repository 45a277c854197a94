"""Text to search terms, for CJK and alphabetic text alike.

CJK has no spaces between words, so a word tokenizer sees "你好世界" as one token and a search
for "世界" finds nothing. Each run of CJK characters is indexed as its single characters and its
overlapping pairs (你 好 世 界 你好 好世 世界); a query run of two or more characters must match
all its pairs in order-insensitive AND, one character matches its unigram. Other text is split
into lower-cased words. The terms go into an FTS5 column with a plain whitespace tokenizer.
"""

from __future__ import annotations

import re

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
_RUN = re.compile(f"[{_CJK}]+|[^\\W_{_CJK}]+", re.UNICODE)
_IS_CJK = re.compile(f"[{_CJK}]")


def _cjk_terms(run: str, *, query: bool) -> list[str]:
    pairs = [run[i:i + 2] for i in range(len(run) - 1)]
    if query:
        return pairs or [run]
    return [*run, *pairs]


def index_terms(text: str) -> str:
    terms: list[str] = []
    for run in _RUN.findall(text.lower()):
        terms += _cjk_terms(run, query=False) if _IS_CJK.match(run) else [run]
    return " ".join(terms)


def query_terms(q: str) -> list[str]:
    terms: list[str] = []
    for run in _RUN.findall(q.lower()):
        terms += _cjk_terms(run, query=True) if _IS_CJK.match(run) else [run]
    return list(dict.fromkeys(terms))


def fts_query(terms: list[str]) -> str:
    """An FTS5 MATCH expression: every term, each quoted (no operator injection)."""
    return " AND ".join('"' + t.replace('"', '""') + '"' for t in terms)
