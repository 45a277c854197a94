"""The web chat page (imgate/webchat, served by ``imgate run``'s web listener) in a real browser:
Debian's chromium driven by Playwright, one browser context per user, against the real platform
(the broker's WebSocket listener, the bridge, the services, the attachment store). Every step
waits with Playwright's expectations (they retry until true or time out), never with sleeps."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium, needs_chromium, new_page, png, sign_in, signed_in
from tests.helpers import connect, tweak

pytestmark = needs_chromium


@pytest.fixture
def settings(settings: Any) -> Any:
    """The WebSocket listener and the web listener on free ports."""
    return tweak(tweak(settings, "mqtt", ws_port=0), "web", enabled=True, port=0)


@pytest.fixture
def base_url(app: Any) -> str:
    return f"http://127.0.0.1:{app.web.port}/"


def bubble(page: Any, text: str) -> Any:
    """The message whose text is exactly ``text``."""
    exact = re.compile(f"^{re.escape(text)}$")
    return page.get_by_test_id("message").filter(has=page.get_by_test_id("msg-text").filter(has_text=exact))


def conv_item(page: Any, conv: str) -> Any:
    return page.locator(f'[data-testid="conv-item"][data-conv="{conv}"]')


async def start_chat(page: Any, uid: str) -> None:
    from playwright.async_api import expect

    await page.get_by_test_id("new-chat-uid").fill(uid)
    await page.get_by_test_id("new-chat-open").click()
    await expect(page.get_by_test_id("chat-title")).to_have_text(uid)


async def say(page: Any, text: str) -> None:
    from playwright.async_api import expect

    await page.get_by_test_id("composer-input").fill(text)
    await page.get_by_test_id("composer-send").click()
    await expect(bubble(page, text)).to_have_count(1)  # the server's copy came back


async def image_size(img: Any) -> list[int]:
    """The natural size of a loaded ``<img>`` (decode() waits until it has loaded)."""
    size: list[int] = await img.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
    return size


async def test_two_users_chat_in_the_browser(app: Any, users: Any, base_url: str, tmp_path: Path) -> None:
    from playwright.async_api import expect

    await users.add("alice", "bob", "carol")
    async with chromium() as browser:
        alice = await signed_in(browser, base_url, "alice", await users.token("alice", "web", "web"))
        bob = await signed_in(browser, base_url, "bob", await users.token("bob", "web", "web"))

        # Alice starts a 1:1 with bob (online) and says hello.
        await start_chat(alice, "bob")
        await expect(alice.get_by_test_id("chat-presence")).to_have_attribute("data-online", "true")
        await say(alice, "hello bob")

        # Bob's list gets the conversation, one unread, alice online; opening it reads it.
        item = conv_item(bob, "d:alice:bob")
        await expect(item.get_by_test_id("unread")).to_have_text("1")
        await expect(item.get_by_test_id("presence")).to_have_attribute("data-online", "true")
        await item.click()
        await expect(bubble(bob, "hello bob")).to_have_count(1)
        await expect(item.get_by_test_id("unread")).to_have_count(0)
        # ... and alice sees her message seen.
        await expect(bubble(alice, "hello bob").get_by_test_id("msg-status")).to_have_text("seen")

        # Bob types (alice sees it), then replies to the hello.
        await bob.get_by_test_id("composer-input").fill("hi alice")
        await expect(alice.get_by_test_id("typing")).to_have_text("bob is typing…")
        await bubble(bob, "hello bob").get_by_test_id("reply-btn").click()
        await expect(bob.get_by_test_id("composer-bar-text")).to_have_text("Replying to alice: hello bob")
        await bob.get_by_test_id("composer-send").click()
        reply = bubble(alice, "hi alice")
        await expect(reply.get_by_test_id("msg-quote-text")).to_have_text("hello bob")
        await expect(alice.get_by_test_id("typing")).to_have_text("")  # his message ends his typing
        await expect(bubble(bob, "hi alice").get_by_test_id("msg-quote")).to_have_text("alice hello bob")

        # Alice edits her hello: bob sees the new text, "edited", and the quote of his reply follows.
        await bubble(alice, "hello bob").get_by_test_id("edit-btn").click()
        await expect(alice.get_by_test_id("composer-input")).to_have_value("hello bob")
        await alice.get_by_test_id("composer-input").fill("hello, bob")
        await alice.get_by_test_id("composer-send").click()
        await expect(bubble(bob, "hello, bob").get_by_test_id("msg-edited")).to_have_text("edited")
        await expect(bubble(bob, "hi alice").get_by_test_id("msg-quote-text")).to_have_text("hello, bob")
        await expect(bubble(alice, "hello, bob").get_by_test_id("msg-edited")).to_have_text("edited")
        await expect(alice.get_by_test_id("composer-bar")).to_be_hidden()

        # Bob reacts with a thumbs-up: both see the count, only bob's chip is his own.
        await bubble(bob, "hello, bob").locator('[data-testid="react-btn"][data-emoji="👍"]').click()
        for page, mine in ((alice, "false"), (bob, "true")):
            chip = bubble(page, "hello, bob").get_by_test_id("reaction")
            await expect(chip).to_have_text("👍 1")
            await expect(chip).to_have_attribute("data-mine", mine)

        # Alice sends an image (640x400): uploaded with a 320x200 thumbnail, which bob sees; a click
        # opens the full image.
        await alice.get_by_test_id("composer-file").set_input_files(
            files=[{"name": "gradient.png", "mimeType": "image/png", "buffer": png(640, 400)}])
        for page in (alice, bob):
            thumb = page.get_by_test_id("msg-image")
            await expect(thumb).to_have_attribute("src", re.compile(r"^https?://"))
            assert await image_size(thumb) == [320, 200]
        await bob.get_by_test_id("msg-image").click()
        full = bob.get_by_test_id("lightbox-image")
        await expect(full).to_be_visible()
        assert await image_size(full) == [640, 400]
        await bob.get_by_test_id("lightbox").click()
        await expect(full).to_be_hidden()
        # Bob has read the image too.
        last_of_alice = alice.locator('[data-testid="message"][data-mine="true"]').last
        await expect(last_of_alice.get_by_test_id("msg-image")).to_have_count(1)
        await expect(last_of_alice.get_by_test_id("msg-status")).to_have_text("seen")

        # Bob blocks carol from the page; carol's message to him is refused as "not allowed".
        carol = await signed_in(browser, base_url, "carol", await users.token("carol", "web", "web"))
        await start_chat(bob, "carol")
        block = bob.get_by_test_id("block-toggle")
        await expect(block).to_have_text("Block")
        await block.click()
        await expect(block).to_have_text("Unblock")
        await start_chat(carol, "bob")
        await carol.get_by_test_id("composer-input").fill("let me in")
        await carol.get_by_test_id("composer-send").click()
        await expect(carol.locator(".error")).to_have_text("send: not allowed (forbidden)")
        await expect(carol.get_by_test_id("composer-input")).to_have_value("let me in")  # not sent

        # Bob goes back to alice, and reloads: sessionStorage signs him in again.
        await conv_item(bob, "d:alice:bob").click()
        await bob.reload()
        await expect(bob.get_by_test_id("connection")).to_have_text("online")
        await conv_item(bob, "d:alice:bob").click()
        await expect(bubble(bob, "hello, bob").get_by_test_id("reaction")).to_have_attribute("data-mine", "true")
        await expect(bob.get_by_test_id("msg-image")).to_have_attribute("src", re.compile(r"^https?://"))
        await expect(alice.get_by_test_id("chat-presence")).to_have_attribute("data-online", "true")  # bob's back
        # "seen" survives the reload: alice has read bob's reply (conversations' peer_read_seq).
        await expect(bubble(bob, "hi alice").get_by_test_id("msg-status")).to_have_text("seen")

        for name, page in (("alice", alice), ("bob", bob)):
            path = tmp_path / f"webchat-{name}.png"
            await page.screenshot(path=path)
            print(f"screenshot of {name}'s page: {path}")


async def test_history_scrolls_up_and_groups(app: Any, users: Any, base_url: str) -> None:
    """45 messages from dave (sent over plain MQTT): the page shows the latest 30, and scrolling
    to the top loads the rest. A group alice creates shows up in bob's list, and works both ways."""
    from playwright.async_api import expect

    await users.add("alice", "bob", "dave")
    async with connect(app.mqtt_port, "dave", "phone", await users.token("dave")) as dave:
        for n in range(1, 46):
            ack = await dave.send_and_ack(f"c{n}", "alice", f"m{n}")
            assert ack["seq"] == n
        # Indexing follows the messages asynchronously, in order: once m45 is found, all are.
        async with asyncio.timeout(10):
            while not (await dave.result("search", {"q": "m45"}))["messages"]:
                pass
    async with chromium() as browser:
        alice = await signed_in(browser, base_url, "alice", await users.token("alice", "web", "web"))
        bob = await signed_in(browser, base_url, "bob", await users.token("bob", "web", "web"))

        item = conv_item(alice, "d:alice:dave")
        await expect(item.get_by_test_id("unread")).to_have_text("45")
        await expect(item.get_by_test_id("presence")).to_have_attribute("data-online", "false")
        await item.click()
        messages = alice.get_by_test_id("message")
        await expect(messages).to_have_count(30)
        await expect(messages.first.get_by_test_id("msg-text")).to_have_text("m16")
        await alice.get_by_test_id("messages").evaluate("list => { list.scrollTop = 0; }")
        await expect(messages).to_have_count(45)
        await expect(messages.first.get_by_test_id("msg-text")).to_have_text("m1")
        await expect(messages.last.get_by_test_id("msg-text")).to_have_text("m45")
        await expect(item.get_by_test_id("unread")).to_have_count(0)

        await alice.get_by_text("New group").click()
        await alice.get_by_test_id("group-name").fill("trio")
        await alice.get_by_test_id("group-members").fill("bob, dave")
        await alice.get_by_test_id("group-create").click()
        await expect(alice.get_by_test_id("chat-title")).to_have_text("trio")
        await say(alice, "welcome")
        group = bob.get_by_test_id("conv-item").filter(has_text="trio")
        await expect(group.get_by_test_id("unread")).to_have_text("2")  # its "created" event and the welcome
        await group.click()
        await expect(bubble(bob, "welcome")).to_have_count(1)
        await expect(bob.get_by_test_id("message").first).to_have_text("alice created the group with bob, dave")
        await say(bob, "thanks")
        await expect(bubble(alice, "thanks")).to_have_count(1)
        await bubble(bob, "thanks").get_by_test_id("recall-btn").click()
        for page in (alice, bob):
            await expect(page.get_by_test_id("message").last.get_by_test_id("msg-text")).to_have_text("message recalled")
            await expect(bubble(page, "thanks")).to_have_count(0)
            trio = page.get_by_test_id("conv-item").filter(has_text="trio")
            await expect(trio.get_by_test_id("conv-preview")).to_have_text("message recalled")

        # Search: the results are listed, and a click opens their conversation.
        await alice.get_by_test_id("search-input").fill("m7")
        await alice.get_by_test_id("search-input").press("Enter")
        result = alice.get_by_test_id("search-result")
        await expect(result).to_have_count(1)
        await expect(result.get_by_test_id("search-result-text")).to_have_text("m7")
        await result.click()
        await expect(alice.get_by_test_id("chat-title")).to_have_text("dave")


async def test_a_refused_sign_in_and_a_take_over_are_shown(app: Any, users: Any, base_url: str) -> None:
    """A wrong token: the broker refuses the CONNECT, and the page says so and asks again. The
    same device signing in on a second page takes the session over: the first page says so and
    stays off (reconnecting would take it back, over and over)."""
    from playwright.async_api import expect

    await users.add("alice")
    token = await users.token("alice", "web", "web")
    async with chromium() as browser:
        page = await new_page(browser, base_url, "alice")
        await sign_in(page, "alice", "imt_not-a-token")
        await expect(page.locator(".error")).to_contain_text("sign-in refused")
        await expect(page.get_by_test_id("login")).to_be_visible()
        await expect(page.locator("#chat")).to_be_hidden()
        assert await page.evaluate("sessionStorage.length") == 0  # nothing kept of a refused login

        await sign_in(page, "alice", token)
        await expect(page.get_by_test_id("connection")).to_have_text("online")
        second = await signed_in(browser, base_url, "alice", token)
        await expect(page.locator(".error")).to_have_text("this device signed in elsewhere")
        await expect(page.get_by_test_id("connection")).to_have_text("offline")
        await expect(second.get_by_test_id("connection")).to_have_text("online")
        await second.get_by_test_id("new-chat-uid").fill("alice")  # the second page works
        await second.get_by_test_id("new-chat-open").click()
        await expect(second.get_by_test_id("chat-title")).to_have_text("alice (notes)")
        await say(second, "note to self")


async def test_the_page_opened_as_localhost_uploads_to_the_listeners_own_address(app: Any, users: Any) -> None:
    """The signed URLs name web.public_url (http://127.0.0.1:port by default); a page opened as
    http://localhost:port uploads there across origins (CORS) and shows the image (its CSP lets
    it)."""
    from playwright.async_api import expect

    await users.add("alice", "bob")
    async with chromium() as browser:
        alice = await signed_in(browser, f"http://localhost:{app.web.port}/", "alice",
                                await users.token("alice", "web", "web"))
        await start_chat(alice, "bob")
        await alice.get_by_test_id("composer-file").set_input_files(
            files=[{"name": "square.png", "mimeType": "image/png", "buffer": png(200, 200)}])
        thumb = alice.get_by_test_id("msg-image")
        await expect(thumb).to_have_attribute("src", re.compile(rf"^http://127\.0\.0\.1:{app.web.port}/files/"))
        assert await image_size(thumb) == [200, 200]
        await expect(alice.get_by_test_id("error")).to_be_hidden()
