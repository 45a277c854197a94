"""The web chat page's scheduled sends (issue 28; docs/protocol.md, "Scheduled send") in Chromium:
the clock button sets a time, Send schedules the message, the open conversation lists its
pending ones with a Cancel each (kept by the ``scheduled`` events, on every device of the user),
and at its time the message arrives as any. Waits are Playwright's expectations, never sleeps."""

from __future__ import annotations

import time
from typing import Any

from tests.browser import chromium, needs_chromium, signed_in
from tests.test_webchat import base_url, bubble, say, settings, start_chat  # noqa: F401 (fixtures)

pytestmark = needs_chromium


async def later(page: Any, at_ms: int) -> None:
    """Sets the composer's send-at time to ``at_ms`` (to the second, in the page's time zone)."""
    await page.get_by_test_id("composer-later").click()
    field = page.get_by_test_id("composer-at")
    await field.evaluate("(el, ms) => { const d = new Date(ms);"
                         " el.value = new Date(d - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19); }",
                         at_ms)


async def test_schedule_list_cancel_and_delivery_in_the_browser(app: Any, users: Any, base_url: str) -> None:  # noqa: F811
    from playwright.async_api import expect

    assert app.services is not None
    await users.add("alice", "bob")
    async with chromium() as browser:
        alice = await signed_in(browser, base_url, "alice", await users.token("alice", "web", "web"))
        laptop = await signed_in(browser, base_url, "alice", await users.token("alice", "laptop", "web"),
                                 device="laptop")
        bob = await signed_in(browser, base_url, "bob", await users.token("bob", "web", "web"))
        await start_chat(alice, "bob")
        await say(alice, "hello")
        await start_chat(laptop, "bob")
        await expect(bubble(laptop, "hello")).to_have_count(1)

        # A time in the past is refused on the page; nothing is sent.
        await later(alice, int(time.time() * 1000) - 60_000)
        await alice.get_by_test_id("composer-input").fill("too late")
        await alice.get_by_test_id("composer-send").click()
        await expect(alice.locator(".error")).to_have_text("pick a time in the future to send it at")
        await expect(alice.get_by_test_id("composer-input")).to_have_value("too late")
        await alice.get_by_test_id("later-cancel").click()
        await expect(alice.get_by_test_id("later-bar")).to_be_hidden()

        # One for tomorrow and one in a few seconds: both listed, on the other device too.
        await later(alice, int(time.time() * 1000) + 86_400_000)
        await alice.get_by_test_id("composer-input").fill("tomorrow")
        await alice.get_by_test_id("composer-send").click()
        await expect(alice.get_by_test_id("composer-input")).to_have_value("")
        await expect(alice.get_by_test_id("later-bar")).to_be_hidden()
        await later(alice, int(time.time() * 1000) + 5_000)
        await alice.get_by_test_id("composer-input").fill("in a moment")
        await alice.get_by_test_id("composer-send").click()
        for page in (alice, laptop):
            items = page.get_by_test_id("scheduled-item")
            await expect(items.get_by_test_id("scheduled-text")).to_have_text(["in a moment", "tomorrow"])
        await expect(bubble(bob, "tomorrow")).to_have_count(0)

        # Cancelled on the laptop: gone from both lists, and from the server's.
        tomorrow = laptop.get_by_test_id("scheduled-item").filter(has_text="tomorrow")
        await tomorrow.get_by_test_id("scheduled-cancel").click()
        for page in (alice, laptop):
            await expect(page.get_by_test_id("scheduled-text")).to_have_text(["in a moment"])
        pending, _ = await app.services.scheduled.pending("alice", cursor=None, limit=10)
        assert [s.command["text"] for s in pending] == ["in a moment"]

        # At its time it arrives as any message, and leaves the list.
        await bob.get_by_test_id("conv-item").first.click()
        await expect(bubble(bob, "in a moment")).to_have_count(1, timeout=20_000)
        for page in (alice, laptop):
            await expect(bubble(page, "in a moment")).to_have_count(1)
            await expect(page.get_by_test_id("scheduled-list")).to_be_hidden()
        await expect(bubble(bob, "tomorrow")).to_have_count(0)
