"""A page's preview from its HTML: ``og:title``, ``og:description`` and ``og:image`` (falling
back to ``<title>``, ``<meta name="description">`` and ``twitter:image``), with the stdlib's
``html.parser``: a tokenizer that executes nothing and accepts any input, broken HTML included.
Text fields are cleaned (whitespace collapsed, control characters dropped) and truncated; the
image is kept only as an absolute ``https`` URL of bounded length (it is never fetched)."""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

log = logging.getLogger("imgate.previews")

MAX_TITLE = 200
MAX_DESCRIPTION = 500
MAX_IMAGE_URL = 1024
_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PageInfo:
    title: str
    description: str
    image: str | None

    @property
    def empty(self) -> bool:
        return not (self.title or self.description or self.image)


class _Head(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title: list[str] = []
        self._in_title = False
        self._title_done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and not self._title_done:
            self._in_title = True
        elif tag == "meta":
            a = {k.lower(): v for k, v in attrs if v is not None}
            name = (a.get("property") or a.get("name") or "").strip().lower()
            if name and "content" in a and name not in self.meta and len(self.meta) < 64:
                self.meta[name] = a["content"][:4 * MAX_DESCRIPTION]

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self._title_done = True

    def handle_data(self, data: str) -> None:
        if self._in_title and sum(map(len, self.title)) < 4 * MAX_TITLE:
            self.title.append(data)


def clean(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters (an ellipsis where it was cut)."""
    text = _SPACE.sub(" ", _CONTROL.sub("", text)).strip()
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def image_url(raw: str | None, base: str, limit: int = MAX_IMAGE_URL) -> str | None:
    """``raw`` resolved against the page's URL, if that is an absolute ``https`` URL with a host,
    no user name, no whitespace or control characters, at most ``limit`` characters."""
    if not raw:
        return None
    raw = raw.strip()
    if _CONTROL.search(raw) or _SPACE.search(raw):
        return None
    try:
        url = urljoin(base, raw)
        parts = urlsplit(url)
        ok = parts.scheme == "https" and bool(parts.hostname) and parts.username is None and parts.password is None
        _ = parts.port
    except ValueError:
        return None
    return url if ok and len(url) <= limit else None


def decode(body: bytes, content_type: str) -> str:
    """The page's text: the charset of its Content-Type, else of a ``<meta charset>`` near its
    start, else UTF-8; undecodable bytes replaced."""
    charset = None
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
    if charset is None and (found := _META_CHARSET.search(body[:4096])):
        charset = found.group(1).decode("ascii")
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        codec = "utf-8"
    if codec not in ("utf-8", "ascii") and not codec.startswith(("iso8859", "cp", "latin", "shift_jis", "euc", "gb",
                                                                  "big5", "koi8", "utf-16")):
        codec = "utf-8"  # no exotic codec (utf-7, rot13...) on a stranger's bytes
    return body.decode(codec, errors="replace")


def parse_page(body: bytes, content_type: str, url: str) -> PageInfo:
    """The preview of the HTML ``body`` served at ``url`` (the final one, after redirects)."""
    parser = _Head()
    try:
        parser.feed(decode(body, content_type))
        parser.close()
    except (ValueError, AssertionError, RecursionError):  # html.parser accepts anything; else: what it had
        log.debug("unparsable page at %s", url, exc_info=True)
    meta = parser.meta
    title = meta.get("og:title") or meta.get("twitter:title") or "".join(parser.title)
    description = meta.get("og:description") or meta.get("twitter:description") or meta.get("description") or ""
    image = image_url(meta.get("og:image:secure_url") or meta.get("og:image") or meta.get("twitter:image"), url)
    return PageInfo(clean(title, MAX_TITLE), clean(description, MAX_DESCRIPTION), image)
