"""Which link of a text message is previewed: the first ``https://`` URL, as a client would
linkify it, bounded in length; and the key a preview is cached by (the URL normalised)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MAX_URL = 2048  # characters: a longer link is not previewed
# A URL runs to the first whitespace, quote, angle bracket or control character.
_URL = re.compile(r"https://[^\s<>\"'`\x00-\x1f\x7f]+")
_TRAILING = ".,;:!?'\"*_~"  # sentence punctuation after a link is not part of it
_CLOSERS = {")": "(", "]": "[", "}": "{"}


def first_https_url(text: str | None, max_len: int = MAX_URL) -> str | None:
    """The first ``https://`` URL in ``text`` (None: none, or the first is longer than
    ``max_len``, or has no host). Costs a substring test for a text without one."""
    if not text or "https://" not in text:
        return None
    found = _URL.search(text)
    if found is None:
        return None
    url = found.group(0)
    while url and (url[-1] in _TRAILING or (url[-1] in _CLOSERS and url.count(_CLOSERS[url[-1]]) < url.count(url[-1]))):
        url = url[:-1]
    if len(url) > max_len:
        return None
    try:
        parts = urlsplit(url)
        if not parts.hostname or parts.username is not None or parts.password is not None:
            return None
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        return None
    return url


def cache_key(url: str) -> str:
    """``url`` normalised: host lower case, no default port, no fragment (a page's fragments
    share one preview)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port in (None, 443) else f"{host}:{parts.port}"
    return urlunsplit(("https", netloc, parts.path or "/", parts.query, ""))
