"""Browser fixtures for the web chat page's tests: Debian's chromium driven by Playwright's async
API, a page logged in as a user, and a small PNG made here (no image files in the repo)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (`make deps-system` installs it)
TIMEOUT_MS = 10_000  # Playwright's expectations wait up to this; only reached when a test fails

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason=f"{CHROMIUM} is missing: `make deps-system` installs Debian's chromium")


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless chromium (Debian's, not a Playwright download)."""
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            await browser.close()


PHONE = {"width": 390, "height": 844}  # a phone-sized viewport (CSS pixels)


async def new_page(browser: Any, base_url: str, label: str, *, viewport: dict[str, int] | None = None) -> Any:
    """The page at ``base_url`` in a browser context of its own (its own sessionStorage)."""
    context = await browser.new_context(viewport=viewport or {"width": 1000, "height": 680})
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    # The page's console and uncaught errors go to the test's output (shown when it fails).
    page.on("console", lambda m: print(f"[{label}] console.{m.type}: {m.text}"))
    page.on("pageerror", lambda e: print(f"[{label}] page error: {e}"))
    await page.goto(base_url)
    return page


async def sign_in(page: Any, uid: str, token: str, device: str = "web") -> None:
    """Fill in and submit the login form."""
    await page.get_by_test_id("login-uid").fill(uid)
    await page.get_by_test_id("login-device").fill(device)
    await page.get_by_test_id("login-token").fill(token)
    await page.get_by_test_id("login-submit").click()


async def signed_in(browser: Any, base_url: str, uid: str, token: str, *, device: str = "web",
                    viewport: dict[str, int] | None = None) -> Any:
    """A page of its own browser context, signed in as ``uid`` and showing the chat."""
    from playwright.async_api import expect

    page = await new_page(browser, base_url, uid, viewport=viewport)
    await sign_in(page, uid, token, device)
    await expect(page.get_by_test_id("connection")).to_have_text("online")
    await expect(page.get_by_test_id("me")).to_have_text(f"{uid} · {device}")
    await expect(page.locator("#chat")).to_be_visible()
    return page


def png(width: int, height: int) -> bytes:
    """A ``width`` x ``height`` RGB PNG: a diagonal gradient."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes(v for x in range(width) for v in (x * 255 // width, y * 255 // height, 160))
                    for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
