"""Text to search terms, for CJK and alphabetic text alike.

CJK has no spaces between words, so a word tokenizer sees "你好世界" as one token and a search
for "世界" finds nothing. Each run of CJK characters is indexed as its single characters and its
overlapping pairs (你 好 世 界 你好 好世 世界); a query run of two or more characters must match
all its pairs in order-insensitive AND, one character matches its unigram. Other text is split
into lower-cased words. The terms go into an FTS5 column with a plain whitespace tokenizer.
"""

from __future__ import annotations

import re
import unicodedata

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


def opaque_cjk(term: str) -> str:
    """A CJK term as a token of ASCII letters (``cjk`` + one letter a-p per hex digit), for an
    engine with its own segmenter (Meilisearch runs jieba or lindera on CJK text, which would
    split a character pair its own way, and differently in a document and in a query). Other
    terms are returned unchanged."""
    if not _IS_CJK.match(term):
        return term
    return "cjk" + "".join("".join(chr(97 + int(d, 16)) for d in f"{ord(ch):05x}") for ch in term)


def opaque_terms(text: str) -> str:
    """``index_terms`` with every CJK term made opaque."""
    return " ".join(opaque_cjk(t) for t in index_terms(text).split())


def fold(term: str) -> str:
    """A term without diacritics (``café`` -> ``cafe``), as both engines compare them."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", term) if not unicodedata.combining(ch))


def covers(text: str, terms: list[str]) -> bool:
    """Whether ``text`` has every one of ``terms`` (diacritics aside): the exact meaning of a
    query, to check an engine's hits against."""
    have = {fold(t) for t in index_terms(text).split()}
    return all(fold(t) in have for t in terms)
