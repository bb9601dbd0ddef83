"""The web app under hostile or unlucky conditions, in a real browser (Debian's
chromium through Playwright) against live daphne, PostgreSQL and Redis: huge
messages, presence out of order, revoked credentials, a flood of resends.
Cast: alice and bob; a "REST device" is one of their other devices."""

import itertools
import json
import re
import time

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import User
from messaging.models import Message
from tests.e2e.fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db(transaction=True)

# Records the longest stretch the page's main thread was busy (a frozen tab
# runs no timers), from when the test resets it.
STALL_RECORDER = """
(() => {
  window.__maxGap = 0;
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    window.__maxGap = Math.max(window.__maxGap, now - last);
    last = now;
  }, 20);
})();
"""


def test_a_huge_message_with_a_pathological_url_does_not_freeze_the_tab(tabs, rest, alice, bob):
    conversation = rest(bob).direct(alice.id)
    alice_tab = tabs(alice)
    page = alice_tab.page
    page.add_init_script(STALL_RECORDER)
    alice_tab.reload()
    alice_tab.open("Bob B.")

    # 99,990 characters: at most 100,000 are allowed. Trimming its trailing
    # ")" one at a time, recounting parentheses each time, took seconds.
    huge = "https://a(" + ")" * 99980
    page.evaluate("window.__maxGap = 0")
    rest(bob).send(conversation, huge)
    shown = alice_tab.messages().locator(".msg-text")
    expect(shown).to_have_count(1)
    started = time.monotonic()
    assert page.evaluate("1 + 1") == 2
    assert time.monotonic() - started < 1
    page.wait_for_timeout(100)  # a tick after any long task records it
    assert page.evaluate("window.__maxGap") < 1000, "the page froze rendering the message"
    assert shown.evaluate("el => el.textContent.length") == len(huge)
    # Longer than any real link: it stays text.
    expect(shown.locator("a")).to_have_count(0)

    # Links still end where they should: before closing punctuation that the
    # URL did not open, after a ")" that it did.
    rest(bob).send(conversation, "see (https://example.org/a). and https://x.org/wiki/A_(b)),")
    links = alice_tab.messages().last.locator("a")
    expect(links).to_have_count(2)
    expect(links.first).to_have_attribute("href", "https://example.org/a")
    expect(links.last).to_have_attribute("href", "https://x.org/wiki/A_(b)")

    # A valid URL over 2,048 characters is shown, as text.
    long_url = "https://example.org/" + "a" * 3000
    rest(bob).send(conversation, long_url)
    last = alice_tab.messages().last.locator(".msg-text")
    expect(last).to_have_text(long_url)
    expect(last.locator("a")).to_have_count(0)


ONLINE = re.compile(r"\bonline\b")
OFFLINE = re.compile(r"\boffline\b")


def test_the_presence_dot_follows_the_partner_and_ignores_stale_versions(tabs, rest, alice, bob):
    """Alice's socket runs through a proxy (Playwright's WebSocket routing), so
    the test can see the presence frames and slip in stale ones, as a slower
    chat server would deliver them."""
    rest(alice).direct(bob.id)
    alice_tab = tabs(alice)
    page = alice_tab.page
    proxies, presence = [], []

    def proxy(ws) -> None:
        server = ws.connect_to_server()
        proxies.append(ws)

        def to_page(message) -> None:
            frame = json.loads(message)
            if frame.get("type") == "presence":
                presence.append(frame)
            ws.send(message)

        server.on_message(to_page)

    page.route_web_socket(re.compile(r"/ws/chat/$"), proxy)
    alice_tab.reload()
    dot = alice_tab.conversation("Bob B.").locator(".presence-dot")
    expect(dot).to_have_class(OFFLINE)  # Bob has no device connected

    bob_tab = tabs(bob)
    expect(dot).to_have_class(ONLINE)
    alice_tab.open("Bob B.")
    subtitle = page.locator("#thread-subtitle")
    expect(subtitle).to_have_text("online")
    came_online = [f for f in presence if f["user_id"] == bob.id][-1]
    assert came_online["status"] == "online"
    version = came_online["version"]

    # An older change delivered late (and a repeat of the current version)
    # changes nothing.
    for stale in (version - 1, version):
        frame = {**came_online, "status": "offline", "version": stale}
        proxies[-1].send(json.dumps(frame))
    page.wait_for_timeout(500)
    expect(dot).to_have_class(ONLINE)
    expect(subtitle).to_have_text("online")

    # Neither does a REST answer older than the frames seen: after a
    # reconnect, the client asks GET presence/ again.
    page.route(
        "**/api/v1/presence/**",
        lambda route: route.fulfill(
            json=[
                {
                    "user_id": bob.id,
                    "status": "offline",
                    "last_active_at": came_online["last_active_at"],
                    "version": version - 1,
                }
            ]
        ),
    )
    with page.expect_response("**/api/v1/presence/**"):
        proxies[-1].close(code=1011, reason="chat server died")
    alice_tab.wait_ready()
    page.wait_for_timeout(300)
    expect(dot).to_have_class(ONLINE)
    page.unroute("**/api/v1/presence/**")

    # Bob closes his tab: the socket closes cleanly, he is offline at once.
    bob_tab.page.close()
    expect(dot).to_have_class(OFFLINE)
    expect(subtitle).to_have_text(re.compile("^last seen"))
    went_offline = [f for f in presence if f["user_id"] == bob.id][-1]
    assert went_offline["status"] == "offline" and went_offline["version"] > version


def test_last_seen_ages_while_the_conversation_stays_open(tabs, rest, alice, bob):
    rest(alice).direct(bob.id)
    User.objects.filter(pk=bob.id).update(last_active_at=timezone.now())
    alice_tab = tabs(alice)
    page = alice_tab.page
    page.clock.install()  # the page's own clock, from now on moved by the test
    alice_tab.reload()
    alice_tab.open("Bob B.")
    subtitle = page.locator("#thread-subtitle")
    expect(subtitle).to_have_text("last seen just now")

    page.clock.run_for("03:05")
    expect(subtitle).to_have_text("last seen 3 min ago")


def test_a_failed_reload_after_ready_reset_is_tried_again(tabs, rest, alice, bob):
    rest(bob).direct(alice.id)
    alice_tab = tabs(alice)
    page = alice_tab.page
    expect(alice_tab.conversation("Bob B.")).to_be_visible()

    # The browser's cursor is ahead of the server's inbox (say, after a database
    # restore): the server answers `ready {reset: true}`, and the client must
    # reload. Its first list (before `ready`) is stale, and the reload fails.
    page.evaluate(f"localStorage.setItem('chat:u{alice.id}:cursor', '1000000000')")
    lists = []

    def conversations(route) -> None:
        lists.append(route.request.url)
        if len(lists) == 1:
            route.fulfill(json=[])  # stale: from before Bob's chat
        elif len(lists) == 2:
            route.abort()  # the reload after `ready.reset` fails
        else:
            route.continue_()

    page.route(re.compile(r"/api/v1/conversations/\?"), conversations)
    page.reload()
    expect(page.locator("#toast")).to_contain_text("Could not load your conversations")
    # The client reconnects and, its reload never having happened, loads again.
    expect(alice_tab.conversation("Bob B.")).to_be_visible()
    alice_tab.wait_ready()
    assert len(lists) >= 3
    hellos = alice_tab.hellos()
    stored = int(page.evaluate(f"localStorage.getItem('chat:u{alice.id}:cursor')"))
    assert stored < 1000000000
    # The cursor of that `ready` was not stored before the reload succeeded:
    # the next hello still carried the old one (and got a reset again).
    assert [h["cursor"] for h in hellos[-2:]] == [1000000000, 1000000000]


def wait_for_cursor(page, member) -> None:
    """The cursor is stored once the first `ready` is handled (after loading)."""
    page.wait_for_function(f"localStorage.getItem('chat:u{member.id}:cursor') !== null")


def chat_keys(page, member) -> list[str]:
    return page.evaluate(
        f"Object.keys(localStorage).filter(k => k.startsWith('chat:u{member.id}:'))"
    )


def test_logging_out_elsewhere_sends_the_app_to_the_log_in_page_and_forgets(tabs, rest, alice, bob):
    rest(alice).direct(bob.id)
    alice_tab = tabs(alice)
    page = alice_tab.page
    wait_for_cursor(page, alice)
    # Something unsent waits in the outbox (it holds the message text).
    page.evaluate(
        f"""localStorage.setItem('chat:u{alice.id}:outbox', JSON.stringify([{{
            client_msg_id: 'x1', conversation_id: 1, text: 'private draft',
            created_at: new Date().toISOString(), status: 'failed', error: 'no'}}]))"""
    )
    assert sorted(chat_keys(page, alice)) == [
        f"chat:u{alice.id}:cursor",
        f"chat:u{alice.id}:outbox",
    ]

    # Another page of the same browser (same session) logs out.
    other = alice_tab.context.new_page()
    other.goto(f"{alice_tab.base_url}/account/")
    other.get_by_role("button", name="Log out").click()
    expect(other).to_have_url(re.compile(r"/login/"))

    # The server closes the app's socket (4401); the app goes to the log-in page.
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    expect(page.get_by_label("Username")).to_be_visible()
    assert chat_keys(page, alice) == []


def test_the_log_out_button_of_the_app_forgets_what_the_browser_kept(tabs, rest, alice, bob):
    rest(alice).direct(bob.id)
    alice_tab = tabs(alice)
    page = alice_tab.page
    wait_for_cursor(page, alice)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/"))
    assert chat_keys(page, alice) == []


# Records when each `send` frame leaves the page (performance.now(), ms).
SEND_RECORDER = """
(() => {
  window.__sends = [];
  const real = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (typeof data === "string" && data.includes('"type":"send"')) {
      window.__sends.push(performance.now());
    }
    return real.call(this, data);
  };
})();
"""


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_long_outbox_is_flushed_at_a_pace_the_server_accepts(tabs, rest, alice, bob):
    conversation = rest(alice).direct(bob.id)
    alice_tab = tabs(alice)
    page = alice_tab.page
    page.add_init_script(SEND_RECORDER)
    # 80 messages written offline wait in the outbox; the page is reloaded.
    # Sent all at once they would pass the server's burst (60 frames) and be
    # dropped as `throttled`.
    count = 80
    page.evaluate(
        """([key, conversation, count]) => {
            const now = new Date().toISOString();
            localStorage.setItem(key, JSON.stringify(Array.from({length: count}, (_, i) => ({
                client_msg_id: `flush-${i}`, conversation_id: conversation,
                text: `queued ${i}`, created_at: now, status: "pending", error: null}))));
        }""",
        [f"chat:u{alice.id}:outbox", conversation, count],
    )
    alice_tab.reload()
    alice_tab.open("Bob B.")
    wait_for(
        lambda: Message.objects.filter(conversation_id=conversation).count() == count,
        20,
        "not every message was stored",
    )
    expect(alice_tab.message(f"queued {count - 1}")).to_have_attribute("data-status", "sent")
    unsent = page.locator("#message-list li.msg.failed, #message-list li.msg.pending")
    expect(unsent).to_have_count(0)
    sends = page.evaluate("window.__sends")
    assert len(sends) == count  # each once: nothing was refused
    busiest = max(sum(1 for t in sends if start <= t < start + 1000) for start in sends)
    assert busiest <= 16, f"{busiest} sends within one second"
    throttled = [f for f in alice_tab.frames_received if f.get("code") == "throttled"]
    assert throttled == []
    texts = list(
        Message.objects.filter(conversation_id=conversation)
        .order_by("seq")
        .values_list("text", flat=True)
    )
    assert texts == [f"queued {i}" for i in range(count)]


def test_throttled_and_server_error_answers_are_retried_before_not_sent(tabs, rest, alice, bob):
    """Alice's socket runs through a proxy that answers some sends with the
    errors a busy or failing server gives, instead of passing them on."""
    conversation = rest(alice).direct(bob.id)
    alice_tab = tabs(alice)
    page = alice_tab.page
    attempts: dict[str, int] = {}
    refuse = {"throttle me": 1, "flaky": 2, "broken": 100}

    def proxy(ws) -> None:
        server = ws.connect_to_server()

        def to_server(message) -> None:
            frame = json.loads(message)
            if frame.get("type") == "send":
                text = frame["text"]
                attempts[text] = attempts.get(text, 0) + 1
                if attempts[text] <= refuse.get(text, 0):
                    code = "throttled" if text == "throttle me" else "server_error"
                    error = {"type": "error", "code": code, "detail": f"{code}!"}
                    ws.send(json.dumps({**error, "client_msg_id": frame["client_msg_id"]}))
                    return
            server.send(message)

        ws.on_message(to_server)

    page.route_web_socket(re.compile(r"/ws/chat/$"), proxy)
    alice_tab.reload()
    alice_tab.open("Bob B.")

    alice_tab.send("throttle me")
    pending = page.locator("#message-list li.msg.pending")
    expect(pending).to_have_count(1)  # dropped, not failed: it waits and goes again
    expect(alice_tab.message("throttle me")).to_have_attribute("data-status", "sent")
    assert attempts["throttle me"] == 2

    alice_tab.send("flaky")  # two server errors, then the server is back
    page.wait_for_timeout(1500)
    expect(page.locator("#message-list li.msg.failed")).to_have_count(0)
    expect(alice_tab.message("flaky")).to_have_attribute("data-status", "sent")
    assert attempts["flaky"] == 3

    alice_tab.send("broken")  # the server keeps failing: retried, then "Not sent"
    failed = page.locator("#message-list li.msg.failed")
    page.wait_for_timeout(2500)
    expect(failed).to_have_count(0)
    expect(failed).to_have_count(1, timeout=12000)
    expect(failed.locator(".msg-status")).to_have_text("Not sent")
    assert attempts["broken"] == 4  # the first try and three retries
    texts = set(Message.objects.filter(conversation_id=conversation).values_list("text", flat=True))
    assert texts == {"throttle me", "flaky"}


def test_a_server_that_crashes_after_ready_is_not_hammered(tabs, rest, alice, bob):
    """Each socket says `ready` and dies at once (through a proxy). The back-off
    must keep growing: it starts again only after a socket stayed up ~10 s."""
    rest(alice).direct(bob.id)
    alice_tab = tabs(alice)
    page = alice_tab.page
    proxies, opened = [], []
    flapping = {"on": False}

    def proxy(ws) -> None:
        server = ws.connect_to_server()
        proxies.append(ws)
        opened.append(time.monotonic())

        def to_page(message) -> None:
            ws.send(message)
            if flapping["on"] and json.loads(message).get("type") == "ready":
                ws.close(code=1011, reason="crashed after ready")

        server.on_message(to_page)

    page.route_web_socket(re.compile(r"/ws/chat/$"), proxy)
    alice_tab.reload()
    assert len(proxies) == 1
    flapping["on"] = True
    proxies[0].close(code=1011, reason="chat server died")
    page.wait_for_timeout(6000)
    # Delays 0.5, 1, 2, 4 s (each +-50 %): five sockets at most in 6 s. Reset
    # to 0.5 s after every `ready`, there would be a dozen.
    later = opened[1:]
    assert 2 <= len(later) <= 5, f"{len(later)} connections in 6 s"
    gaps = [b - a for a, b in itertools.pairwise(later)]
    assert gaps[-1] > 0.9, gaps

    flapping["on"] = False
    expect(page.locator("#chat")).to_have_attribute("data-connection", "ready", timeout=20000)


# A page whose timers never fire (what Chrome's throttling of long-hidden tabs
# does, in the extreme), and a count of the heartbeat frames it sends.
FROZEN_PAGE_TIMERS = """
(() => {
  window.setInterval = () => 0;
  window.__beats = 0;
  const real = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (typeof data === "string" && data.includes('"type":"heartbeat"')) window.__beats += 1;
    return real.call(this, data);
  };
})();
"""


def test_heartbeats_run_in_a_worker_and_one_goes_when_the_tab_shows(tabs, alice):
    alice_tab = tabs(alice)
    page = alice_tab.page
    page.add_init_script(FROZEN_PAGE_TIMERS)
    alice_tab.reload()
    # The test server asks for a beat every 0.5 s: the worker's clock keeps them
    # going though the page's own intervals never fire.
    expect(page.locator("#chat")).to_have_attribute("data-connection", "ready")
    page.wait_for_function("window.__beats >= 4", timeout=5000)
    assert any(w.url.endswith(".js") and "heartbeat-worker" in w.url for w in page.workers)

    # Coming back into view sends one at once.
    sent = page.evaluate(
        """() => {
            const before = window.__beats;
            document.dispatchEvent(new Event("visibilitychange"));
            return window.__beats - before;
        }"""
    )
    assert sent == 1


def test_the_length_limit_counts_code_points_like_the_server(tabs, rest, alice, bob):
    conversation = rest(alice).direct(bob.id)
    alice_tab = tabs(alice)
    alice_tab.open("Bob B.")
    # 100,000 emoji: the limit in code points, 200,000 UTF-16 units.
    text = "😀" * 100_000
    alice_tab.composer.fill(text)
    alice_tab.composer.press("Enter")
    expect(alice_tab.page.locator("#composer-error")).to_have_text("")
    wait_for(
        lambda: Message.objects.filter(conversation_id=conversation).exists(),
        10,
        "the message was not sent",
    )
    assert Message.objects.get(conversation_id=conversation).text == text
    alice_tab.composer.fill(text + "😀")
    alice_tab.composer.press("Enter")
    expect(alice_tab.page.locator("#composer-error")).to_contain_text("at most 100,000")


def test_a_message_of_only_invisible_characters_is_not_sent(tabs, rest, alice, bob):
    """The server refuses it (`empty_text`); sent anyway it became a "Not sent"
    bubble whose retry could never succeed."""
    conversation = rest(alice).direct(bob.id)
    alice_tab = tabs(alice)
    alice_tab.open("Bob B.")
    alice_tab.composer.fill("\u200b\u2060 \u200b")
    alice_tab.composer.press("Enter")
    alice_tab.page.wait_for_timeout(500)
    expect(alice_tab.messages()).to_have_count(0)

    alice_tab.send("\u200bvisible")
    expect(alice_tab.messages()).to_have_count(1)
    wait_for(
        lambda: Message.objects.filter(conversation_id=conversation).count() == 1,
        10,
        "the visible message was not sent",
    )


# The window of the page can lose the focus (another window in front of it),
# switchable by the test; headless chromium always has it.
FOCUS_SWITCH = """
(() => {
  window.__focused = true;
  Document.prototype.hasFocus = function () { return window.__focused; };
})();
"""


def test_messages_are_marked_read_only_while_the_window_has_the_focus(tabs, rest, alice, bob):
    conversation = rest(bob).direct(alice.id)
    alice_tab = tabs(alice)
    page = alice_tab.page
    page.add_init_script(FOCUS_SWITCH)
    alice_tab.reload()
    alice_tab.open("Bob B.")
    page.evaluate("window.__focused = false")
    rest(bob).send(conversation, "are you looking?")
    expect(alice_tab.message("are you looking?")).to_have_count(1)
    page.wait_for_timeout(500)
    expect(alice_tab.badge("Bob B.")).to_have_text("1")
    # The count is read out as text (aria-label on a span is not).
    expect(alice_tab.conversation("Bob B.")).to_contain_text("1 unread")
    assert not [f for f in alice_tab.frames_sent if f["type"] == "read"]

    page.evaluate("window.__focused = true; window.dispatchEvent(new Event('focus'))")
    expect(alice_tab.badge("Bob B.")).to_have_count(0)
    reads = [f for f in alice_tab.frames_sent if f["type"] == "read"]
    assert reads and reads[-1]["seq"] == 1
