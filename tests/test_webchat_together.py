"""Issue 28's features together on the web chat page, in Debian's chromium driven by Playwright,
against the real platform (tests/test_webchat_features.py's setup: link previews on, from a local
HTTPS site): a group where the owner sets a ttl, mentions (one of them dropped by the server),
forwards, pins, previews, schedules, and members reply in a thread; the conversation list's
unread threads and the thread list; the ttl menu only for who may change it; the header at 390 px
with every button. Screenshots at desktop width and at 390 px are kept under the test's temp
directory. Waits are Playwright's expectations, never sleeps."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.browser import PHONE, chromium, needs_chromium, signed_in
from tests.helpers import connect, on
from tests.test_previews import Page, Site, site_fixture, trusted_fixture  # noqa: F401 (fixtures)
from tests.test_webchat import act, box, bubble, conv_item, say
from tests.test_webchat_features import base_url, group_item, settings  # noqa: F401 (fixtures)
from tests.test_webchat_scheduled import later

pytestmark = needs_chromium

DESKTOP = {"width": 1280, "height": 800}


async def fits(page: Any, width: int) -> None:
    """Nothing of the page is wider than the screen, every part of the conversation's header is
    on screen, and its title keeps room to be read."""
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= width
    parts = await page.evaluate("""() => [...document.querySelectorAll('.pane > .pane-head > *')]
        .filter((e) => e.getClientRects().length)
        .map((e) => { const r = e.getBoundingClientRect();
                      return [e.dataset.testid || e.className, r.left, r.right]; })""")
    for name, left, right in parts:
        assert left >= -0.5 and right <= width + 0.5, (name, left, right, parts)
    title = page.locator(".pane > .pane-head .head-text")
    room = (await box(title))["width"]
    cut = await title.locator("strong").evaluate("e => e.scrollWidth > e.clientWidth")
    assert not cut or room >= 60, (room, parts)  # the whole title, or an ellipsis after a fair part of it


async def test_a_group_with_every_feature(app: Any, users: Any, base_url: str, site: Site,  # noqa: F811
                                          tmp_path: Path) -> None:
    from playwright.async_api import expect

    site.pages["/friday"] = Page()
    link = site.url("/friday")
    await users.add("alice", "bob", "carol", "dave")
    async with chromium() as browser, \
            connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as phone, \
            connect(app.mqtt_port, "carol", "phone", await users.token("carol")) as carol:
        g = await phone.result("group.create", {"name": "crew", "members": ["bob", "carol", "dave"]})
        await phone.send_and_ack("a1", "bob", "see you at the office")
        await carol.send_and_ack("c1", "alice", "the venue is booked")
        alice = await signed_in(browser, base_url, "alice", await users.token("alice", "web", "web"), viewport=DESKTOP)
        bob = await signed_in(browser, base_url, "bob", await users.token("bob", "web", "web"), viewport=PHONE)

        # The owner has the ttl menu and sets a day; a plain member (his page knows the group's
        # members: the autocomplete lists them) sees the setting, not the menu.
        await group_item(alice, "crew").click()
        await expect(alice.get_by_test_id("ttl-select")).to_be_visible()
        await alice.get_by_test_id("ttl-select").select_option("86400")
        await expect(alice.get_by_test_id("ttl-change")).to_have_text("Alice set messages to disappear after 1 day")
        await say(alice, "plan for friday?")
        await group_item(bob, "crew").click()
        await expect(bubble(bob, "plan for friday?")).to_have_count(1)
        await bob.get_by_test_id("composer-input").press_sequentially("@")
        await expect(bob.get_by_test_id("mention-option").get_by_test_id("mention-name")).to_have_text(
            ["Alice", "Carol", "Dave"])
        await bob.get_by_test_id("composer-input").press("Escape")
        await bob.get_by_test_id("composer-input").fill("")
        await expect(bob.get_by_test_id("ttl-select")).to_be_hidden()
        await expect(bob.get_by_test_id("ttl-label")).to_have_text("⏱ 1 day")
        await expect(alice.get_by_test_id("ttl-label")).to_be_hidden()

        # A mention picked before its member left: the server drops it, and the page says so.
        composer = alice.get_by_test_id("composer-input")
        await composer.press_sequentially("@Da")
        await alice.get_by_test_id("mention-option").click()
        await expect(composer).to_have_value("@Dave ")
        await phone.result("group.remove", {"gid": g["gid"], "members": ["dave"]})
        await expect(alice.get_by_test_id("messages").get_by_text("Alice removed Dave")).to_be_visible()
        await composer.press_sequentially("see this")
        await alice.get_by_test_id("composer-send").click()
        await expect(bubble(alice, "@Dave see this")).to_have_count(1)
        await expect(alice.get_by_test_id("notice-text")).to_have_text(
            "Not mentioned: @Dave (not a member of this conversation)")
        await alice.get_by_test_id("notice-close").click()
        await expect(alice.get_by_test_id("notice")).to_be_hidden()
        # A mention that stands: no note.
        await composer.press_sequentially("hi @Bo")
        await alice.get_by_test_id("mention-option").click()
        await composer.press_sequentially("look")
        await alice.get_by_test_id("composer-send").click()
        await expect(bubble(bob, "hi @Bob look")).to_have_attribute("data-mentioned", "true")
        await expect(alice.get_by_test_id("notice")).to_be_hidden()

        # Forwarded from carol's 1:1 into the group: bob sees where it came from (who, a 1:1).
        await conv_item(alice, "d:alice:carol").click()
        await act(bubble(alice, "the venue is booked"), "forward-btn")
        await alice.get_by_test_id("forward-picker").locator(f'[data-conv="{g["conv"]}"]').click()
        origin = bubble(bob, "the venue is booked").get_by_test_id("msg-forwarded")
        await expect(origin).to_have_text("Forwarded from Carol")
        await expect(origin).to_have_attribute("data-kind", "direct")
        await group_item(alice, "crew").click()
        await expect(bubble(alice, "the venue is booked").get_by_test_id("msg-forwarded")).to_have_text(
            "Forwarded from Carol")

        # Threads: bob replies in one (he follows it now) and goes back to his list; carol's
        # reply there is counted in his list and in the conversation's 🧵, and listed.
        root_id = await bubble(alice, "plan for friday?").get_attribute("data-id")
        await act(bubble(bob, "plan for friday?"), "thread-btn")
        pane = bob.get_by_test_id("thread-pane")
        await pane.get_by_test_id("thread-input").fill("I'm in")
        await pane.get_by_test_id("thread-send").click()
        await expect(pane.get_by_test_id("thread-replies").get_by_test_id("msg-text")).to_have_text(["I'm in"])
        await bob.get_by_test_id("thread-close").click()
        await bob.get_by_test_id("back").click()
        await carol.send({"cid": "t1", "group": g["gid"], "type": "text", "text": "me too", "thread": root_id})
        await carol.inbox.wait_for(on("/in/ack", cid="t1"))
        badge = group_item(bob, "crew").get_by_test_id("thread-badge")
        await expect(badge).to_have_text("🧵1")
        await expect(group_item(alice, "crew").get_by_test_id("thread-badge")).to_have_count(0)  # she follows none
        await group_item(bob, "crew").click()
        threads = bob.get_by_test_id("threads-open")
        await expect(threads).to_have_text("🧵 1")
        await threads.click()
        item = pane.get_by_test_id("thread-item")
        await expect(item).to_have_count(1)
        await expect(item.get_by_test_id("thread-item-text")).to_have_text("plan for friday?")
        await expect(item.get_by_test_id("thread-item-replies")).to_have_text("2 replies")
        await expect(item.get_by_test_id("thread-item-unread")).to_have_text("1")
        assert (await box(pane))["width"] == PHONE["width"]  # a screen of its own on a phone
        await bob.screenshot(path=tmp_path / "webchat-all-390-threads.png")
        await item.get_by_test_id("thread-item-open").click()
        await expect(pane.get_by_test_id("thread-replies").get_by_test_id("msg-text")).to_have_text(["I'm in", "me too"])
        await expect(badge).to_have_count(0)  # read in the pane: the server's count says so
        await expect(threads).to_have_text("🧵")
        await pane.get_by_test_id("threads-back").click()
        await expect(item.get_by_test_id("thread-item-replies")).to_have_text("2 replies")
        await expect(item.get_by_test_id("thread-item-unread")).to_have_count(0)
        await bob.get_by_test_id("thread-close").click()

        # The rest, for the screenshots: a pin, a preview, a scheduled message, the thread open.
        await act(bubble(alice, "plan for friday?"), "pin-btn")
        await expect(bob.get_by_test_id("pin-text")).to_have_text(["plan for friday?"])
        await say(alice, f"details at {link}")
        await expect(bubble(bob, f"details at {link}").get_by_test_id("link-preview-title")).to_have_text("The & Title")
        await expect(bubble(bob, f"details at {link}")).to_be_in_viewport(ratio=1)  # the card did not push it out
        await later(alice, int(time.time() * 1000) + 86_400_000)
        await composer.fill("reminder: bring the slides")
        await alice.get_by_test_id("composer-send").click()
        await expect(alice.get_by_test_id("scheduled-text")).to_have_text(["reminder: bring the slides"])
        await bubble(alice, "plan for friday?").get_by_test_id("msg-replies").click()
        await expect(alice.get_by_test_id("thread-replies").get_by_test_id("msg-text")).to_have_text(["I'm in", "me too"])
        await expect(bubble(alice, "hi @Bob look").get_by_test_id("msg-expires")).to_have_count(1)
        await fits(alice, DESKTOP["width"])
        conversation = await box(alice.locator(".pane"))
        assert conversation["width"] >= 500, conversation
        thread_pane = await box(alice.get_by_test_id("thread-pane"))
        assert thread_pane["x"] >= conversation["x"] + conversation["width"] - 0.5, (thread_pane, conversation)
        await alice.screenshot(path=tmp_path / "webchat-all-desktop.png")

        # At 390 px: the group's header and a 1:1's (every button: 🧵, ⏰, the ttl menu, Block) fit.
        await expect(bob.get_by_test_id("pin-bar")).to_be_visible()
        await fits(bob, PHONE["width"])
        await bob.screenshot(path=tmp_path / "webchat-all-390-group.png")
        await bob.get_by_test_id("back").click()
        await conv_item(bob, "d:alice:bob").click()
        for testid in ("threads-open", "composer-later", "ttl-select", "block-toggle"):
            await expect(bob.get_by_test_id(testid)).to_be_visible()  # either member of a 1:1 sets the ttl
        await expect(bob.get_by_test_id("ttl-label")).to_be_hidden()
        await fits(bob, PHONE["width"])
        await bob.screenshot(path=tmp_path / "webchat-all-390-direct.png")
        print(f"screenshots: {tmp_path}/webchat-all-*.png")
