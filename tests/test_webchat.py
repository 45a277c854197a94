"""The web chat page (imgate/webchat, served by ``imgate run``'s web listener) in a real browser:
Debian's chromium driven by Playwright, one browser context per user, against the real platform
(the broker's WebSocket listener, the bridge, the services, the attachment store). Every step
waits with Playwright's expectations (they retry until true or time out), never with sleeps."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.certs import write_dev_certs
from tests.browser import PHONE, chromium, needs_chromium, new_page, png, sign_in, signed_in
from tests.helpers import connect, on, tweak

pytestmark = needs_chromium


@pytest.fixture
def settings(settings: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The WebSocket listener and the web listener on free ports. A test parametrized with
    ``link`` gets a page that cannot connect: ``refused`` (config.json names a port nobody
    listens on) or ``untrusted`` (wss:// with a certificate of imgate's development CA, which the
    browser does not trust)."""
    s = tweak(tweak(settings, "mqtt", ws_port=0), "web", enabled=True, port=0)
    link = getattr(getattr(request.node, "callspec", None), "params", {}).get("link")
    if link == "untrusted":
        certs = write_dev_certs(tmp_path / "certs")
        s = tweak(s, "mqtt", wss_port=0, tls_cert=certs.server_cert, tls_key=certs.server_key)
    if link != "refused":
        yield s
        return
    with socket.socket() as closed:  # bound, never listening: a connection to it is refused
        closed.bind(("127.0.0.1", 0))
        yield tweak(s, "web", mqtt_url=f"ws://127.0.0.1:{closed.getsockname()[1]}/mqtt")


@pytest.fixture
def base_url(app: Any) -> str:
    return f"http://127.0.0.1:{app.web.port}/"


async def test_the_page_and_its_protocol_module_are_served_as_javascript(app: Any, base_url: str) -> None:
    """app.js imports imclient.js (ES modules, no build step): both as JavaScript, under the
    page's CSP (scripts from this origin only)."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        for name in ("app.js", "imclient.js"):
            r = await http.get(name)
            assert r.status_code == 200
            assert r.headers["content-type"].split(";")[0] == "text/javascript"
            assert "script-src 'self';" in r.headers["content-security-policy"]
        assert 'from "./imclient.js"' in (await http.get("app.js")).text
        assert "document" not in (await http.get("imclient.js")).text  # no DOM in the protocol module


async def mqtt_url(app: Any) -> str:
    """What config.json tells the page to connect to."""
    async with httpx.AsyncClient() as http:
        got: str = (await http.get(f"http://127.0.0.1:{app.web.port}/config.json")).json()["mqtt_url"]
    return got


def bubble(page: Any, text: str) -> Any:
    """The message whose text is exactly ``text``."""
    exact = re.compile(f"^{re.escape(text)}$")
    return page.get_by_test_id("message").filter(has=page.get_by_test_id("msg-text").filter(has_text=exact))


async def act(message: Any, testid: str, emoji: str = "") -> None:
    """Clicks one of a message's actions, which show while it is hovered."""
    await message.hover()
    button = message.locator(f'[data-testid="{testid}"][data-emoji="{emoji}"]') if emoji else message.get_by_test_id(testid)
    await button.click()


def conv_item(page: Any, conv: str) -> Any:
    return page.locator(f'[data-testid="conv-item"][data-conv="{conv}"]')


async def start_chat(page: Any, uid: str, name: str | None = None) -> None:
    """Opens a 1:1 with ``uid``, whose title is their display name (``users.add`` names a user
    ``uid.title()``)."""
    from playwright.async_api import expect

    await page.get_by_test_id("new-chat-uid").fill(uid)
    await page.get_by_test_id("new-chat-open").click()
    await expect(page.get_by_test_id("chat-title")).to_have_text(name or uid.title())


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
        await expect(alice.get_by_test_id("typing")).to_have_text("Bob is typing…")
        await act(bubble(bob, "hello bob"), "reply-btn")
        await expect(bob.get_by_test_id("composer-bar-text")).to_have_text("Replying to Alice: hello bob")
        await bob.get_by_test_id("composer-send").click()
        reply = bubble(alice, "hi alice")
        await expect(reply.get_by_test_id("msg-quote-text")).to_have_text("hello bob")
        await expect(alice.get_by_test_id("typing")).to_have_text("")  # his message ends his typing
        await expect(bubble(bob, "hi alice").get_by_test_id("msg-quote")).to_have_text("Alice hello bob")

        # Alice edits her hello: bob sees the new text, "edited", and the quote of his reply follows.
        await act(bubble(alice, "hello bob"), "edit-btn")
        await expect(alice.get_by_test_id("composer-input")).to_have_value("hello bob")
        await alice.get_by_test_id("composer-input").fill("hello, bob")
        await alice.get_by_test_id("composer-send").click()
        await expect(bubble(bob, "hello, bob").get_by_test_id("msg-edited")).to_have_text("edited")
        await expect(bubble(bob, "hi alice").get_by_test_id("msg-quote-text")).to_have_text("hello, bob")
        await expect(bubble(alice, "hello, bob").get_by_test_id("msg-edited")).to_have_text("edited")
        await expect(alice.get_by_test_id("composer-bar")).to_be_hidden()

        # Bob reacts with a thumbs-up: both see the count, only bob's chip is his own.
        await act(bubble(bob, "hello, bob"), "react-btn", "👍")
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
        await expect(bob.get_by_test_id("message").first).to_have_text("Alice created the group with Bob, Dave")
        await say(bob, "thanks")
        await expect(bubble(alice, "thanks")).to_have_count(1)
        await act(bubble(bob, "thanks"), "recall-btn")
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
        await expect(alice.get_by_test_id("chat-title")).to_have_text("Dave")


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
        await expect(page.locator(".error")).to_contain_text(
            f"Could not connect to {await mqtt_url(app)}: sign-in refused: bad user name or token")
        await expect(page.get_by_test_id("login")).to_be_visible()
        await expect(page.locator("#chat")).to_be_hidden()
        assert await page.evaluate("sessionStorage.length") == 0  # nothing kept of a refused login

        await sign_in(page, "alice", token)
        await expect(page.get_by_test_id("connection")).to_have_text("online")
        second = await signed_in(browser, base_url, "alice", token)
        await expect(page.locator(".error")).to_contain_text("this device signed in elsewhere")
        await expect(page.get_by_test_id("connection")).to_have_text("offline")
        await expect(page.get_by_test_id("login")).to_be_visible()  # it asks again, the uid filled in
        await expect(page.get_by_test_id("login-uid")).to_have_value("alice")
        assert await page.evaluate("sessionStorage.length") == 0  # a reload does not take the session back
        await expect(second.get_by_test_id("connection")).to_have_text("online")
        await second.get_by_test_id("new-chat-uid").fill("alice")  # the second page works
        await second.get_by_test_id("new-chat-open").click()
        await expect(second.get_by_test_id("chat-title")).to_have_text("Alice (notes)")
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


@pytest.mark.parametrize("link", ["refused", "untrusted"])
async def test_a_connection_that_fails_is_shown_and_the_sign_in_comes_back(
        app: Any, users: Any, base_url: str, link: str, tmp_path: Path) -> None:
    """The page cannot open its WebSocket (nothing listens there; or wss:// with a certificate the
    browser does not trust): it says so, with the URL, and shows the sign-in form again, filled
    in; nothing is kept, so a reload does not try it again by itself."""
    from playwright.async_api import expect

    await users.add("alice")
    url = await mqtt_url(app)
    assert url.startswith("wss://" if link == "untrusted" else "ws://")
    async with chromium() as browser:
        page = await new_page(browser, base_url, "alice", viewport=PHONE if link == "untrusted" else None)
        await sign_in(page, "alice", await users.token("alice", "web", "web"))
        error = page.get_by_test_id("error")
        await expect(error).to_be_visible()
        await expect(error).to_contain_text(f"Could not connect to {url}: ")
        await expect(error).to_contain_text("the connection was refused or closed before the sign-in")
        if link == "untrusted":  # the browser does not say which: the page says what to check
            host = url.removeprefix("wss://").split("/")[0]
            await expect(error).to_contain_text(f"does this browser trust its certificate? (open https://{host}/ once")
        await expect(page.get_by_test_id("login")).to_be_visible()
        await expect(page.locator("#chat")).to_be_hidden()
        await expect(page.get_by_test_id("connecting")).to_be_hidden()
        await expect(page.get_by_test_id("login-uid")).to_have_value("alice")
        assert await page.evaluate("sessionStorage.length") == 0
        assert inside(await box(error), {"x": 0, "y": 0, **page.viewport_size})  # all of it on screen
        assert apart(await box(error), await box(page.get_by_test_id("login")))  # covering nothing of the form
        await page.screenshot(path=tmp_path / f"webchat-{link}.png")
        await page.reload()
        await expect(page.get_by_test_id("login")).to_be_visible()
        await expect(error).to_be_hidden()


async def test_a_revoked_token_signs_the_page_out(app: Any, users: Any, base_url: str) -> None:
    """The server closes the connection (the device's token revoked): the page says so, with the
    URL and the reason, and asks to sign in again (it does not reconnect over and over)."""
    from playwright.async_api import expect

    await users.add("alice")
    async with chromium() as browser:
        page = await signed_in(browser, base_url, "alice", await users.token("alice", "web", "web"))
        assert await users.services.users.revoke_tokens("alice", "web") == 1
        error = page.get_by_test_id("error")
        await expect(error).to_contain_text(f"Disconnected from {await mqtt_url(app)}: signed out by the server: not authorized any more")
        await expect(page.get_by_test_id("login")).to_be_visible()
        await expect(page.locator("#chat")).to_be_hidden()
        await expect(page.get_by_test_id("login-uid")).to_have_value("alice")
        await expect(page.get_by_test_id("login-token")).to_have_value("")  # that one is no good now
        assert await page.evaluate("sessionStorage.length") == 0


async def box(locator: Any) -> dict[str, float]:
    """A visible element's bounding box (x, y, width, height), in CSS pixels of the viewport."""
    from playwright.async_api import expect

    await expect(locator).to_be_visible()
    found: dict[str, float] | None = await locator.bounding_box()
    assert found is not None
    return found


def inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (inner["x"] >= outer["x"] - 0.5 and inner["y"] >= outer["y"] - 0.5
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5)


def apart(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
            or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


async def test_a_phone_sized_page_with_display_names_and_avatars(app: Any, users: Any, base_url: str,
                                                                tmp_path: Path) -> None:
    """ann (added as ``--name Ann``) on a 390 px wide screen: the list and the conversation are
    two screens, the message box takes the width. ben edits his profile on the page (name,
    status, avatar): ann sees "Benjamin", his status and his picture in the list, the header and
    his messages; ben sees "Ann" (her account name: she never set one). The unread badge and a
    message's action bar cover nothing and are not cut off."""
    from playwright.async_api import expect

    accounts = users.services.users
    await accounts.add_user("ann", "Ann")
    await accounts.add_user("ben", "Ben")
    async with chromium() as browser:
        ann = await signed_in(browser, base_url, "ann", await users.token("ann", "web", "web"), viewport=PHONE)
        ben = await signed_in(browser, base_url, "ben", await users.token("ben", "web", "web"))
        await expect(ann.get_by_test_id("me-name")).to_have_text("Ann")
        await expect(ben.get_by_test_id("me-name")).to_have_text("Ben")

        # ben edits his profile.
        await ben.get_by_test_id("profile-open").click()
        await expect(ben.get_by_test_id("profile-name")).to_have_value("Ben")
        await ben.get_by_test_id("profile-name").fill("Benjamin")
        await ben.get_by_test_id("profile-status").fill("at lunch")
        await ben.get_by_test_id("profile-avatar").set_input_files(
            files=[{"name": "me.png", "mimeType": "image/png", "buffer": png(600, 300)}])
        await ben.get_by_test_id("profile-save").click()
        await expect(ben.get_by_test_id("profile")).to_be_hidden()
        await expect(ben.get_by_test_id("me-name")).to_have_text("Benjamin")
        await expect(ben.get_by_test_id("me-status")).to_have_text("at lunch")
        mine = ben.get_by_test_id("me-avatar").locator("img")
        await expect(mine).to_have_attribute("src", re.compile(rf"^http://127\.0\.0\.1:{app.web.port}/files/"))
        assert await image_size(mine) == [256, 128]  # made small on the page before the upload

        # ann, on the list screen, opens a chat with ben: the conversation screen replaces it.
        side, pane = ann.locator(".side"), ann.locator(".pane")
        await expect(side).to_be_visible()
        await expect(pane).to_be_hidden()
        await start_chat(ann, "ben", "Benjamin")
        await expect(side).to_be_hidden()
        await expect(pane).to_be_visible()
        await expect(ann.get_by_test_id("chat-sub")).to_have_text("ben · online · at lunch")
        await expect(ann.get_by_test_id("chat-avatar").locator("img")).to_have_attribute(
            "src", re.compile(r"^http://127\.0\.0\.1:\d+/files/"))
        composer = await box(ann.get_by_test_id("composer-input"))
        assert composer["width"] >= 280, composer  # most of the 390 px: not a sliver
        await say(ann, "hi ben")
        await ann.screenshot(path=tmp_path / "webchat-390-conversation.png")

        # ben sees ann's account name on her message and in his list, and answers twice.
        item = conv_item(ben, "d:ann:ben")
        await expect(item.get_by_test_id("conv-title")).to_have_text("Ann")
        await item.click()
        await expect(bubble(ben, "hi ben").get_by_test_id("msg-from")).to_have_text("Ann")
        await expect(ben.get_by_test_id("chat-title")).to_have_text("Ann")
        await say(ben, "hi ann")
        theirs = bubble(ann, "hi ann")
        await expect(theirs.get_by_test_id("msg-from")).to_have_text("Benjamin")
        await expect(theirs.get_by_test_id("msg-avatar").locator("img")).to_have_attribute(
            "src", re.compile(r"/files/"))

        # A message's actions, on hover (ben's wide page): inside the bubble, below its text.
        hello = bubble(ben, "hi ben")
        await hello.hover()
        actions = hello.get_by_test_id("msg-actions")
        await expect(actions).to_be_visible()
        bar, whole = await box(actions), await box(hello)
        assert inside(bar, whole), (bar, whole)
        assert bar["y"] >= (await box(hello.get_by_test_id("msg-text")))["y"] + 1, "it covers the text"
        assert inside(bar, await box(ben.get_by_test_id("messages")))  # not cut off by the header

        # ann goes back to the list; ben's next message is unread there, its badge in full view.
        await ann.get_by_test_id("back").click()
        await expect(side).to_be_visible()
        await expect(pane).to_be_hidden()
        await say(ben, "are you there?")
        mine_item = conv_item(ann, "d:ann:ben")
        badge = mine_item.get_by_test_id("unread")
        await expect(badge).to_have_text("1")
        await expect(mine_item.get_by_test_id("conv-title")).to_have_text("Benjamin")
        await expect(mine_item.get_by_test_id("avatar").locator("img")).to_have_attribute("src", re.compile(r"/files/"))
        badge_box, row = await box(badge), await box(mine_item)
        assert inside(badge_box, row), (badge_box, row)
        assert apart(badge_box, await box(mine_item.get_by_test_id("presence")))
        assert apart(badge_box, await box(mine_item.get_by_test_id("conv-title")))
        assert (await box(mine_item.get_by_test_id("conv-title")))["width"] >= 150
        await ann.screenshot(path=tmp_path / "webchat-390-list.png")
        print(f"screenshots at 390 px: {tmp_path}/webchat-390-*.png")

        # Opening it again reads it; ben clears his name: he is "Ben" again for ann.
        await mine_item.click()
        await expect(bubble(ann, "are you there?")).to_have_count(1)
        await expect(badge).to_have_count(0)
        await ben.get_by_test_id("profile-open").click()
        await ben.get_by_test_id("profile-name").fill("")
        await ben.get_by_test_id("profile-save").click()
        await expect(ann.get_by_test_id("chat-title")).to_have_text("Ben")
        await expect(bubble(ann, "hi ann").get_by_test_id("msg-from")).to_have_text("Ben")


async def test_after_a_dropped_connection_the_gap_is_repaired_and_the_waiting_message_sent(
        app: Any, users: Any, base_url: str) -> None:
    """ann's network goes down (her WebSocket is closed, and new ones are refused until it is back,
    by Playwright's WebSocket routing), twice. What ben sends meanwhile is not delivered to her (a
    clean session): once the network is back and the page has reconnected by itself, imclient
    fetches it with history (gap repair). What she sends meanwhile waits in imclient's outbox and
    goes out, once, when she is back; the conversation reads in seq order."""
    from playwright.async_api import expect

    await users.add("ann", "ben")
    net: dict[str, Any] = {"down": False, "open": []}

    async def route(ws: Any) -> None:
        if net["down"]:
            await ws.close(code=4000, reason="the network is down")
            return
        ws.connect_to_server()
        net["open"].append(ws)

    async with connect(app.mqtt_port, "ben", "phone", await users.token("ben")) as ben, chromium() as browser:
        await ben.send_and_ack("b1", "ann", "one")
        ann = await new_page(browser, base_url, "ann")
        await ann.route_web_socket(re.compile(r"/mqtt$"), route)
        await sign_in(ann, "ann", await users.token("ann", "web", "web"))
        connection = ann.get_by_test_id("connection")
        await expect(connection).to_have_text("online")
        await conv_item(ann, "d:ann:ben").click()
        await expect(bubble(ann, "one")).to_have_count(1)

        async def network(up: bool) -> None:
            net["down"] = not up
            if not up:
                for ws in net["open"]:
                    await ws.close(code=4000, reason="the network is down")
                net["open"].clear()
            await expect(connection).to_have_text("online" if up else re.compile("^(offline|connecting…)$"))

        # What ben sends while ann is away is fetched when she is back (nothing else would bring it).
        await network(up=False)
        await ben.send_and_ack("b2", "ann", "two")
        await network(up=True)
        await expect(ann.get_by_test_id("msg-text")).to_have_text(["one", "two"])

        # What ann sends while away waits, and goes out when she is back.
        await network(up=False)
        await ann.get_by_test_id("composer-input").fill("three")
        await ann.get_by_test_id("composer-send").click()
        await ben.send_and_ack("b4", "ann", "four")
        await expect(ann.get_by_test_id("composer-input")).to_have_value("three")  # waiting for its ack
        await network(up=True)
        await expect(ann.get_by_test_id("msg-text")).to_have_text(["one", "two", "four", "three"])
        await expect(ann.get_by_test_id("composer-input")).to_have_value("")  # acked
        await ben.inbox.wait_for(on("/in/msg", text="three"))
        assert len(ben.inbox.matching(on("/in/msg", text="three"))) == 1
        await expect(ann.get_by_test_id("error")).to_be_hidden()


async def test_forward_one_message_and_several_merged(app: Any, users: Any, base_url: str, tmp_path: Path) -> None:
    """Forwarding (issue 28) on the page: a message's Forward action and the target picker; several
    selected and forwarded as one merged message, which the recipient sees as a card listing them
    (an image among them, downloaded through the recipient's own conversation)."""
    from playwright.async_api import expect

    await users.add("alice", "bob", "carol")
    async with chromium() as browser, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        alice = await signed_in(browser, base_url, "alice", await users.token("alice", "web", "web"))
        carol = await signed_in(browser, base_url, "carol", await users.token("carol", "web", "web"))
        await start_chat(alice, "carol")
        await say(alice, "hi carol")
        for cid, words in (("b1", "one"), ("b2", "two")):
            await bob.send_and_ack(cid, "alice", words)
        await conv_item(alice, "d:alice:bob").click()
        await expect(bubble(alice, "two")).to_have_count(1)
        await alice.get_by_test_id("composer-file").set_input_files(
            files=[{"name": "gradient.png", "mimeType": "image/png", "buffer": png(64, 40)}])
        image = alice.locator('[data-testid="message"][data-mine="true"]').last
        await expect(image.get_by_test_id("msg-image")).to_have_count(1)

        # One message: its Forward action, then carol's conversation in the picker.
        await act(bubble(alice, "one"), "forward-btn")
        picker = alice.get_by_test_id("forward-picker")
        await expect(picker.locator('[data-conv="d:alice:bob"]')).to_have_count(1)  # every conversation
        await picker.locator('[data-testid="forward-target"][data-conv="d:alice:carol"]').click()
        await expect(picker).to_have_count(0)
        await conv_item(carol, "d:alice:carol").click()
        forwarded = bubble(carol, "one")
        await expect(forwarded.get_by_test_id("msg-forwarded")).to_have_text("Forwarded from Bob")
        await expect(forwarded.get_by_test_id("msg-from")).to_have_text("Alice")

        # Several: selected (in any order), counted, forwarded as one merged message.
        for message in (image, bubble(alice, "one"), bubble(alice, "two")):
            await act(message, "select-btn")
            await expect(message).to_have_attribute("data-selected", "true")
        await expect(alice.get_by_test_id("select-count")).to_have_text("3 selected")
        await alice.get_by_test_id("forward-merged").click()
        await alice.get_by_test_id("forward-picker").locator('[data-conv="d:alice:carol"]').click()
        await expect(alice.get_by_test_id("select-bar")).to_be_hidden()
        await expect(alice.locator('[data-selected="true"]')).to_have_count(0)
        card = carol.get_by_test_id("msg-merged")
        await expect(card.get_by_test_id("merged-item")).to_have_count(3)
        await expect(card.get_by_test_id("merged-from")).to_have_text(["Bob", "Bob", "Alice"])  # the conversation's order
        await expect(card.get_by_test_id("merged-text")).to_have_text(["one", "two"])
        await expect(card.get_by_test_id("msg-image")).to_have_attribute("src", re.compile(r"^https?://"))
        await expect(conv_item(carol, "d:alice:carol").get_by_test_id("conv-preview")).to_have_text("[chat history]")
        # Alice's own copy of the forward has no Edit (the words are bob's).
        await conv_item(alice, "d:alice:carol").click()
        await bubble(alice, "one").hover()
        await expect(bubble(alice, "one").get_by_test_id("forward-btn")).to_be_visible()
        await expect(bubble(alice, "one").get_by_test_id("edit-btn")).to_have_count(0)
        path = tmp_path / "webchat-forward-carol.png"
        await carol.screenshot(path=path)
        print(f"screenshot of carol's page: {path}")


async def test_a_thread_pane(app: Any, users: Any, base_url: str) -> None:
    """Threads (issue 28): a message's Thread action opens its thread in a pane; a reply sent
    there is a thread reply (the server's thread and tseq); the root shows its reply count, which
    opens the thread for the other member, whose pane gets the replies live; a reply says it is in
    a thread."""
    from playwright.async_api import expect

    await users.add("alice", "bob")
    async with chromium() as browser:
        alice = await signed_in(browser, base_url, "alice", await users.token("alice", "web", "web"))
        bob = await signed_in(browser, base_url, "bob", await users.token("bob", "web", "web"))
        await start_chat(alice, "bob")
        await say(alice, "which release?")
        await conv_item(bob, "d:alice:bob").click()
        root = bubble(bob, "which release?")
        await expect(root).to_have_count(1)

        # Bob opens the thread from the message and replies in it.
        await act(root, "thread-btn")
        pane = bob.get_by_test_id("thread-pane")
        await expect(pane).to_be_visible()
        await expect(pane.get_by_test_id("thread-root").get_by_test_id("msg-text")).to_have_text("which release?")
        await pane.get_by_test_id("thread-input").fill("the next one")
        await pane.get_by_test_id("thread-send").click()
        replies = pane.get_by_test_id("thread-replies")
        await expect(replies.get_by_test_id("msg-text")).to_have_text(["the next one"])
        await expect(pane.get_by_test_id("thread-count")).to_have_text("1 reply")

        # Alice sees the count on the root, and the reply (in the conversation) says it is in a thread.
        conversation = alice.get_by_test_id("messages")
        count = bubble(alice, "which release?").get_by_test_id("msg-replies")
        await expect(count).to_have_text("1 reply")
        await expect(bubble(alice, "the next one").get_by_test_id("msg-in-thread")).to_have_text("in thread")
        await count.click()
        alice_pane = alice.get_by_test_id("thread-pane")
        await expect(alice_pane.get_by_test_id("thread-replies").get_by_test_id("msg-text")).to_have_text(
            ["the next one"])
        await alice_pane.get_by_test_id("thread-input").fill("agreed")
        await alice_pane.get_by_test_id("thread-send").click()
        # Bob's open pane gets it live, in order; both roots say 2 replies.
        await expect(replies.get_by_test_id("msg-text")).to_have_text(["the next one", "agreed"])
        await expect(pane.get_by_test_id("thread-count")).to_have_text("2 replies")
        await expect(conversation.get_by_test_id("msg-replies")).to_have_text("2 replies")
        await expect(bob.get_by_test_id("messages").get_by_test_id("msg-replies")).to_have_text("2 replies")

        # The server stored them as the thread's replies 1 and 2, and bob's pane marked them read.
        async with connect(app.mqtt_port, "alice", "phone", await users.token("alice")) as probe:
            [item] = (await probe.result("threads", {"conv": "d:alice:bob"}))["items"]
            assert (item["root"]["text"], item["replies"], item["last"]["text"]) == ("which release?", 2, "agreed")
            page = await probe.result("history", {"conv": "d:alice:bob", "thread": item["thread"]})
            assert [(m["text"], m["tseq"]) for m in page["messages"]] == [("the next one", 1), ("agreed", 2)]
        async with connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as probe, asyncio.timeout(10):
            while (await probe.result("threads", {"conv": "d:alice:bob"}))["items"][0]["read_tseq"] != 2:
                pass  # the pane's thread.read is on its way
        await bob.get_by_test_id("thread-close").click()
        await expect(pane).to_be_hidden()

        # On a phone the thread is a screen of its own, and closing it shows the conversation again.
        phone = await signed_in(browser, base_url, "alice", await users.token("alice", "web2", "web"),
                                device="web2", viewport=PHONE)
        await conv_item(phone, "d:alice:bob").click()
        await bubble(phone, "which release?").get_by_test_id("msg-replies").click()
        phone_pane = phone.get_by_test_id("thread-pane")
        await expect(phone_pane.get_by_test_id("thread-replies").get_by_test_id("msg-text")).to_have_text(
            ["the next one", "agreed"])
        box = await phone_pane.bounding_box()
        assert (box["x"], box["width"]) == (0, PHONE["width"]), box  # the whole width, nothing beside it
        await phone.get_by_test_id("thread-close").click()
        await expect(phone.get_by_test_id("messages").get_by_text("agreed", exact=True)).to_be_visible()


async def test_disappearing_messages_in_the_browser(settings: Any) -> None:
    """Disappearing messages (issue 28): a member sets the conversation's ttl from its menu (the
    choices the server allows: here a minimum of 4 s, so the test sees one expire on a real
    clock), both pages show the change as a line of the conversation, a message sent then is
    marked with when it goes, and goes from both pages on the server's ``expired`` event; what
    was sent before stays; turning it off shows too."""
    from playwright.async_api import expect

    from imgate.app import App
    from tests.conftest import Users

    ttl_settings = tweak(settings, "limits", min_ttl_s=4, expiry_interval_s=0.2)
    async with App(ttl_settings) as app:
        users = Users(app.services)
        await users.add("alice", "bob")
        base = f"http://127.0.0.1:{app.web.port}/"
        async with chromium() as browser:
            alice = await signed_in(browser, base, "alice", await users.token("alice", "web", "web"))
            bob = await signed_in(browser, base, "bob", await users.token("bob", "web", "web"))
            await start_chat(alice, "bob")
            await say(alice, "this one stays")
            await conv_item(bob, "d:alice:bob").click()
            await expect(bubble(bob, "this one stays")).to_have_count(1)
            select = alice.get_by_test_id("ttl-select")
            await expect(select).to_have_value("0")
            await select.select_option("4")
            for page in (alice, bob):
                await expect(page.get_by_test_id("ttl-change")).to_have_text(
                    "Alice set messages to disappear after 4 seconds")
            await expect(bob.get_by_test_id("ttl-select")).to_have_value("4")  # from the ttl event
            await alice.get_by_test_id("composer-input").fill("gone in a moment")
            await alice.get_by_test_id("composer-send").click()
            for page in (alice, bob):
                # Marked while it lasts, then removed on the server's expired event.
                await expect(bubble(page, "gone in a moment").get_by_test_id("msg-expires")).to_have_count(1)
            for page in (alice, bob):
                await expect(bubble(page, "gone in a moment")).to_have_count(0)
                await expect(bubble(page, "this one stays")).to_have_count(1)
                await expect(bubble(page, "this one stays").get_by_test_id("msg-expires")).to_have_count(0)
            await expect(conv_item(bob, "d:alice:bob").get_by_test_id("conv-preview")).to_have_text(
                "message disappeared")
            # A reload shows the same: the tombstone is not shown, the change line is.
            await bob.reload()
            await conv_item(bob, "d:alice:bob").click()
            await expect(bubble(bob, "this one stays")).to_have_count(1)
            await expect(bob.get_by_test_id("ttl-change")).to_have_count(1)
            await expect(bob.get_by_test_id("message")).to_have_count(2)
            await expect(bob.get_by_test_id("ttl-select")).to_have_value("4")
            # bob turns it off: both see who did.
            await bob.get_by_test_id("ttl-select").select_option("0")
            for page in (alice, bob):
                await expect(page.get_by_test_id("ttl-change").last).to_have_text("Bob turned disappearing messages off")
            await expect(select).to_have_value("0")
            await say(alice, "kept now")
            await expect(bubble(bob, "kept now").get_by_test_id("msg-expires")).to_have_count(0)


async def test_a_bots_messages_and_conversation_show_a_bot_badge(app: Any, users: Any, base_url: str) -> None:
    """Bots (docs/bots.md): a bot's message says ``"bot": true``, and the page shows BOT next to
    its name in the message and in the conversation list; a user's have none."""
    from playwright.async_api import expect

    await users.add("alice", "bob")
    await users.services.users.add_user("helper", "Helper", kind="bot")
    async with chromium() as browser, \
            connect(app.mqtt_port, "helper", "srv", await users.token("helper", "srv")) as bot, \
            connect(app.mqtt_port, "bob", "phone", await users.token("bob")) as bob:
        page = await signed_in(browser, base_url, "alice", await users.token("alice", "web", "web"))
        assert "error" not in await bot.send_and_ack("b1", "alice", "beep from a bot")
        assert "error" not in await bob.send_and_ack("u1", "alice", "hi from bob")
        bot_item, bob_item = conv_item(page, "d:alice:helper"), conv_item(page, "d:alice:bob")
        await expect(bot_item.get_by_test_id("bot-badge")).to_have_text("BOT")
        await expect(bob_item.get_by_test_id("conv-title")).to_have_text("Bob")
        await expect(bob_item.get_by_test_id("bot-badge")).to_have_count(0)
        await bot_item.click()
        await expect(bubble(page, "beep from a bot").get_by_test_id("bot-badge")).to_have_text("BOT")
        await bob_item.click()
        await expect(bubble(page, "hi from bob")).to_have_count(1)
        await expect(bubble(page, "hi from bob").get_by_test_id("bot-badge")).to_have_count(0)
