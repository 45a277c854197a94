"""The web chat page's support for mentions, pins, link previews and read-by lists (issue 28), in
Debian's chromium driven by Playwright, one browser context per user, against the real platform
(tests/test_webchat.py's setup). Link previews are fetched from a local HTTPS site (the one of
tests/test_previews.py, trusted through ``previews.ca_file``). Every step waits with Playwright's
expectations (they retry until true or time out), never with sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import PHONE, chromium, needs_chromium, signed_in
from tests.helpers import connect, on, tweak
from tests.test_previews import Page, Site, conf, site_fixture, trusted_fixture  # noqa: F401
from tests.test_webchat import act, bubble, conv_item, say, start_chat

pytestmark = needs_chromium


@pytest.fixture
def settings(settings: Any, site: Site, trusted: Path) -> Iterator[Any]:
    """The WebSocket and web listeners on free ports; link previews on, against ``site``."""
    yield conf(tweak(tweak(settings, "mqtt", ws_port=0), "web", enabled=True, port=0), trusted)


@pytest.fixture
def base_url(app: Any) -> str:
    return f"http://127.0.0.1:{app.web.port}/"


def group_item(page: Any, name: str) -> Any:
    return page.get_by_test_id("conv-item").filter(has_text=name)


async def test_mentions_pins_and_read_by_in_a_group(app: Any, users: Any, base_url: str) -> None:
    """Alice (the owner) mentions bob through the `@` autocomplete: bob's list shows the mention
    badge, the message is highlighted for him, and the badge goes when he reads it. Read-by on
    alice's message lists bob as a reader and carol (on a phone) as not yet. Bob pins it: alice
    and carol see it in the pin bar; a recall unpins it; bob unpins the other pin from the bar."""
    from playwright.async_api import expect

    await users.add("alice", "bob", "carol")
    async with chromium() as browser:
        alice = await signed_in(browser, base_url, "alice", await users.token("alice", "web", "web"))
        bob = await signed_in(browser, base_url, "bob", await users.token("bob", "web", "web"))
        carol = await signed_in(browser, base_url, "carol", await users.token("carol", "web", "web"), viewport=PHONE)

        await alice.get_by_text("New group").click()
        await alice.get_by_test_id("group-name").fill("crew")
        await alice.get_by_test_id("group-members").fill("bob, carol")
        await alice.get_by_test_id("group-create").click()
        await expect(alice.get_by_test_id("chat-title")).to_have_text("crew")
        await say(alice, "plain words")
        await expect(group_item(bob, "crew").get_by_test_id("unread")).to_have_text("2")

        # `@` lists the other members, and @all for the owner; `@b` narrows it to bob.
        composer = alice.get_by_test_id("composer-input")
        options = alice.get_by_test_id("mention-option")
        await composer.press_sequentially("hi @")
        await expect(options.get_by_test_id("mention-name")).to_have_text(["@all", "Bob", "Carol"])
        await composer.press_sequentially("b")
        await expect(options).to_have_count(1)
        await options.click()
        await expect(composer).to_have_value("hi @Bob ")
        await expect(alice.get_by_test_id("mention-list")).to_be_hidden()
        await composer.press_sequentially("look")
        await alice.get_by_test_id("composer-send").click()
        await expect(bubble(alice, "hi @Bob look")).to_have_count(1)
        # Keyboard: the arrow keys move in the list, Enter picks (it does not send).
        await composer.press_sequentially("and @")
        await composer.press("ArrowDown")
        await composer.press("ArrowDown")
        await composer.press("Enter")
        await expect(composer).to_have_value("and @Carol ")
        await composer.fill("")

        # Bob's list counts the mention (not carol's); the message is highlighted for bob.
        bob_crew = group_item(bob, "crew")
        await expect(bob_crew.get_by_test_id("unread")).to_have_text("3")
        await expect(bob_crew.get_by_test_id("mention-badge")).to_have_text("@1")
        await carol.get_by_test_id("conv-item").first.wait_for()
        await expect(group_item(carol, "crew").get_by_test_id("unread")).to_have_text("3")
        await expect(group_item(carol, "crew").get_by_test_id("mention-badge")).to_have_count(0)
        await bob_crew.click()
        await expect(bubble(bob, "hi @Bob look")).to_have_attribute("data-mentioned", "true")
        await expect(bubble(bob, "plain words")).not_to_have_attribute("data-mentioned", "true")
        await expect(bob_crew.get_by_test_id("mention-badge")).to_have_count(0)
        # A plain member is not offered @all (the group's default: admins only).
        bob_composer = bob.get_by_test_id("composer-input")
        await bob_composer.press_sequentially("@")
        await expect(bob.get_by_test_id("mention-option").get_by_test_id("mention-name")).to_have_text(["Alice", "Carol"])
        await bob_composer.press("Escape")
        await expect(bob.get_by_test_id("mention-list")).to_be_hidden()
        await bob_composer.fill("")

        # Read-by: alice's message, read by bob, not yet by carol; a plain member has no such button.
        await act(bubble(alice, "hi @Bob look"), "read-by-btn")
        panel = alice.get_by_test_id("read-by")
        await expect(panel.get_by_test_id("read-by-title")).to_have_text("Read by 1 of 2")
        await expect(panel.get_by_test_id("read-by-reader").get_by_test_id("read-by-name")).to_have_text(["Bob"])
        await expect(panel.get_by_test_id("read-by-waiting").get_by_test_id("read-by-name")).to_have_text(["Carol"])
        await alice.get_by_test_id("read-by-close").click()
        await expect(panel).to_be_hidden()
        await bubble(bob, "hi @Bob look").hover()
        await expect(bubble(bob, "hi @Bob look").get_by_test_id("pin-btn")).to_be_visible()
        await expect(bubble(bob, "hi @Bob look").get_by_test_id("read-by-btn")).to_have_count(0)

        # Pins: bob pins alice's message; alice and carol (on a phone) see it in the bar.
        await act(bubble(bob, "hi @Bob look"), "pin-btn")
        for page in (alice, bob):
            await expect(page.get_by_test_id("pin-bar").get_by_test_id("pin-text")).to_have_text(["hi @Bob look"])
        # 35 more from alice's phone: carol's page opens on the latest 30, without the pinned one.
        gid = (await alice.evaluate("() => document.querySelector('[data-testid=conv-item].active').dataset.conv"))[2:]
        async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as phone:
            for n in range(35):
                await phone.send({"cid": f"f{n}", "group": gid, "type": "text", "text": f"filler {n}"})
            await phone.inbox.wait_for(on("/in/ack", cid="f34"))
        await group_item(carol, "crew").click()
        await expect(bubble(carol, "filler 34")).to_have_count(1)
        await expect(carol.get_by_test_id("pin-bar").get_by_test_id("pin-text")).to_have_text(["hi @Bob look"])
        bar = await carol.get_by_test_id("pin-bar").bounding_box()
        assert bar is not None and bar["x"] >= 0 and bar["x"] + bar["width"] <= PHONE["width"]
        await expect(bubble(carol, "hi @Bob look")).to_have_count(0)
        # A second pin, of a message carol's page has not loaded (the list is asked again): the
        # bar shows the newest, and the count opens the whole list.
        await act(bubble(alice, "plain words"), "pin-btn")
        await expect(carol.get_by_test_id("pin-more")).to_have_text("2 pinned")
        await expect(carol.get_by_test_id("pin-text")).to_have_text(["plain words"])
        await carol.get_by_test_id("pin-more").click()
        await expect(carol.get_by_test_id("pin-text")).to_have_text(["plain words", "hi @Bob look"])
        # A click on a pin loads the older page it is on and scrolls to it.
        await carol.get_by_test_id("pin").filter(has_text="hi @Bob look").get_by_test_id("pin-go").click()
        await expect(bubble(carol, "hi @Bob look")).to_be_in_viewport()
        await expect(bubble(carol, "hi @Bob look")).to_have_attribute("data-pinned", "true")
        await expect(bubble(carol, "filler 34")).not_to_be_in_viewport()
        await carol.get_by_test_id("messages").evaluate("list => { list.scrollTop = list.scrollHeight; }")
        await expect(bubble(carol, "plain words")).not_to_be_in_viewport()
        await carol.get_by_test_id("pin").filter(has_text="plain words").get_by_test_id("pin-go").click()
        await expect(bubble(carol, "plain words")).to_be_in_viewport()

        # A recall unpins; bob unpins the other from the bar.
        await act(bubble(alice, "hi @Bob look"), "recall-btn")
        for page in (alice, bob, carol):
            await expect(page.get_by_test_id("pin-text")).to_have_text(["plain words"])
        await bob.get_by_test_id("pin-unpin").click()
        for page in (alice, bob, carol):
            await expect(page.get_by_test_id("pin-bar")).to_be_hidden()
        await expect(bubble(alice, "plain words").get_by_test_id("pin-btn")).to_have_attribute("data-pinned", "false")


async def test_who_may_pin_follows_the_group_setting_and_a_refusal_shows_the_servers_message(
        app: Any, users: Any, base_url: str) -> None:
    """When the owner makes pinning admins-only (a `group` event), a plain member's page stops
    offering it, the owner's keeps it. In a 1:1 whose peer blocks the user, the server refuses
    the pin: the page shows the server's message."""
    from playwright.async_api import expect

    await users.add("alice", "bob")
    async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as phone, chromium() as browser:
        g = await phone.result("group.create", {"name": "board", "members": ["bob"]})
        await phone.send({"cid": "b1", "group": g["gid"], "type": "text", "text": "agenda"})
        await phone.send_and_ack("d1", "bob", "psst")
        alice = await signed_in(browser, base_url, "alice", await users.token("alice", "web", "web"))
        bob = await signed_in(browser, base_url, "bob", await users.token("bob", "web", "web"))
        await group_item(alice, "board").click()
        await group_item(bob, "board").click()
        agenda = bubble(bob, "agenda")
        await agenda.hover()
        await expect(agenda.get_by_test_id("pin-btn")).to_be_visible()

        await phone.result("group.settings", {"gid": g["gid"], "pin": "admins"})
        await expect(agenda.get_by_test_id("pin-btn")).to_have_count(0)
        await expect(agenda.get_by_test_id("reply-btn")).to_have_count(1)
        await act(bubble(alice, "agenda"), "pin-btn")
        await expect(bob.get_by_test_id("pin-text")).to_have_text(["agenda"])
        await expect(bob.get_by_test_id("pin-unpin")).to_have_count(0)
        await expect(alice.get_by_test_id("pin-unpin")).to_have_count(1)

        await phone.result("block.add", {"uid": "bob"})
        await conv_item(bob, "d:alice:bob").click()
        await act(bubble(bob, "psst"), "pin-btn")
        await expect(bob.get_by_test_id("error")).to_have_text("pin: not allowed (forbidden)")
        await expect(bob.get_by_test_id("pin-bar")).to_be_hidden()


async def test_a_link_preview_card_live_and_from_history(app: Any, users: Any, base_url: str, site: Site) -> None:
    """Alice sends a link: the server fetches the page (the local HTTPS site) and both pages show
    the card, title, description and host, without the page's image (the CSP allows no foreign
    image, and the page loads none). After a reload, the card comes from history."""
    from playwright.async_api import expect

    site.pages["/article"] = Page()
    link = site.url("/article")
    await users.add("alice", "bob")
    async with chromium() as browser:
        alice = await signed_in(browser, base_url, "alice", await users.token("alice", "web", "web"))
        bob = await signed_in(browser, base_url, "bob", await users.token("bob", "web", "web"))
        await start_chat(alice, "bob")
        await say(alice, f"read {link}")
        await conv_item(bob, "d:alice:bob").click()
        for page in (alice, bob):
            card = bubble(page, f"read {link}").get_by_test_id("link-preview")
            await expect(card.get_by_test_id("link-preview-title")).to_have_text("The & Title")
            await expect(card.get_by_test_id("link-preview-description")).to_have_text("A description of the page")
            await expect(card.get_by_test_id("link-preview-host")).to_have_text(f"localhost:{site.port}")
            await expect(card).to_have_attribute("href", link)
            await expect(card).to_have_attribute("rel", "noopener noreferrer")
            await expect(card.locator("img")).to_have_count(0)
        assert site.requests.count("/article") == 1 and "/img/cover.png" not in site.requests

        await bob.reload()
        await expect(bob.get_by_test_id("connection")).to_have_text("online")
        await conv_item(bob, "d:alice:bob").click()
        card = bubble(bob, f"read {link}").get_by_test_id("link-preview")
        await expect(card.get_by_test_id("link-preview-title")).to_have_text("The & Title")

    async with httpx.AsyncClient() as http:  # and the page's CSP still allows images from itself only
        csp = (await http.get(base_url)).headers["content-security-policy"]
    assert "img-src 'self' blob: data:" in csp and "https:" not in csp.split("img-src")[1].split(";")[0]
