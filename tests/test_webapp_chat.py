"""The web app in a real browser (Debian's chromium through Playwright), against
live daphne, PostgreSQL and Redis. Cast: alice and bob talk; a "REST device" is
one of their other devices, using the public API over HTTP.

Each test opens fresh browser profiles, logged in through the real log-in page."""

import json
import re
import time

import pytest
from playwright.sync_api import expect

from messaging.models import Membership, Message, Report
from tests.e2e.browser import PHONE
from tests.e2e.fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_people_chat_both_ways_live(tabs, alice, bob):
    alice_tab, bob_tab = tabs(alice), tabs(bob)

    # Alice starts the chat by finding Bob.
    page = alice_tab.page
    page.get_by_role("button", name="New chat").click()
    page.get_by_label("Find a person").fill("bob")
    page.locator("#direct-results button", has_text="Bob B.").click()
    expect(page.locator("#thread-title")).to_have_text("Bob B.")

    alice_tab.send("Hi Bob, lunch today?")
    expect(alice_tab.message("Hi Bob, lunch today?")).to_have_attribute("data-status", "sent")

    # Bob's list gets the new conversation live, unread; opening it reads it,
    # and Alice sees the read receipt.
    expect(bob_tab.badge("Alice A.")).to_have_text("1")
    bob_tab.open("Alice A.")
    expect(bob_tab.message("Hi Bob, lunch today?")).to_have_count(1)
    expect(alice_tab.message("Hi Bob, lunch today?")).to_have_attribute("data-status", "seen")

    bob_tab.send("Sure, 12:30?")
    expect(alice_tab.message("Sure, 12:30?")).to_have_count(1)
    alice_tab.send("See you there")
    expect(bob_tab.message("See you there")).to_have_count(1)

    # Each message once on each side: the sender's ack and its message.new are one.
    expect(alice_tab.messages()).to_have_count(3)
    expect(bob_tab.messages()).to_have_count(3)
    expect(alice_tab.conversation("Bob B.").locator(".conv-preview")).to_have_text(
        "You: See you there"
    )
    assert Message.objects.count() == 3


def test_typing_shows_and_disappears(tabs, rest, alice, bob):
    rest(alice).direct(bob.id)
    alice_tab, bob_tab = tabs(alice), tabs(bob)
    alice_tab.open("Bob B.")
    bob_tab.open("Alice A.")

    bob_tab.composer.press_sequentially("I am writ")
    expect(alice_tab.typing()).to_have_text("Bob B. is typing…")
    expect(alice_tab.conversation("Bob B.").locator(".conv-preview")).to_have_text("typing…")
    # Bob stops typing: it goes after the announced expires_in (5 s).
    started = time.monotonic()
    expect(alice_tab.typing()).to_have_text("", timeout=9000)
    assert time.monotonic() - started > 2

    # Typing again shows it again; the message itself ends it at once.
    bob_tab.composer.press_sequentially("ing")
    expect(alice_tab.typing()).to_have_text("Bob B. is typing…")
    bob_tab.composer.press("Enter")
    expect(alice_tab.message("I am writing")).to_have_count(1)
    expect(alice_tab.typing()).to_have_text("", timeout=1500)


def test_unread_badge_rises_and_clears(tabs, rest, alice, bob):
    conversation = rest(alice).direct(bob.id)
    bob_tab = tabs(bob)
    expect(bob_tab.conversation("Alice A.")).to_be_visible()
    expect(bob_tab.badge("Alice A.")).to_have_count(0)

    alice_phone = rest(alice)
    alice_phone.send(conversation, "one")
    expect(bob_tab.badge("Alice A.")).to_have_text("1")
    alice_phone.send(conversation, "two")
    expect(bob_tab.badge("Alice A.")).to_have_text("2")
    expect(bob_tab.page).to_have_title("(2) Chat")

    bob_tab.open("Alice A.")
    expect(bob_tab.badge("Alice A.")).to_have_count(0)
    expect(bob_tab.page).to_have_title("Chat")
    # The server was told (a `read` frame), so it stays cleared after a reload.
    deadline = time.monotonic() + 5
    while Membership.objects.get(conversation_id=conversation, user=bob.user).last_read_seq < 2:
        assert time.monotonic() < deadline, "the read marker never reached the server"
        time.sleep(0.1)
    bob_tab.page.goto(bob_tab.base_url + "/")
    bob_tab.wait_ready()
    expect(bob_tab.conversation("Alice A.")).to_be_visible()
    expect(bob_tab.badge("Alice A.")).to_have_count(0)


def test_reload_keeps_history_and_syncs_what_it_missed_from_its_cursor(tabs, rest, alice, bob):
    conversation = rest(alice).direct(bob.id)
    alice_tab = tabs(alice)
    alice_tab.open("Bob B.")
    alice_tab.send("first")
    alice_tab.send("second")
    expect(alice_tab.message("second")).to_have_attribute("data-status", "sent")

    alice_tab.reload()
    alice_tab.open("Bob B.")
    expect(alice_tab.message("first")).to_have_count(1)
    expect(alice_tab.message("second")).to_have_count(1)

    # The tab goes away; Bob writes; the tab comes back to the conversation.
    alice_tab.page.goto("about:blank")
    alice_tab.frames_received.clear()
    rest(bob).send(conversation, "while you were away")
    alice_tab.page.goto(f"{alice_tab.base_url}/#/c/{conversation}")
    alice_tab.wait_ready()
    expect(alice_tab.message("while you were away")).to_have_count(1)
    expect(alice_tab.messages()).to_have_count(3)

    # A new browser starts from the head (null); each later load resumes from
    # the cursor it stored, and the server replays what came after it.
    cursors = [frame["cursor"] for frame in alice_tab.hellos()]
    assert len(cursors) == 3
    assert cursors[0] is None
    assert isinstance(cursors[1], int) and cursors[2] == cursors[1]
    replayed = [f for f in alice_tab.frames_received if f["type"] in ("event", "ready")]
    assert replayed[0]["kind"] == "message.new"
    assert replayed[0]["message"]["text"] == "while you were away"
    assert replayed[0]["cursor"] == cursors[2] + 1
    assert replayed[1]["type"] == "ready"
    stored = alice_tab.page.evaluate(f"localStorage.getItem('chat:u{alice.id}:cursor')")
    assert int(stored) >= replayed[0]["cursor"]  # and on, as the tab reads it


def test_a_message_written_offline_is_sent_once_back_online(tabs, rest, alice, bob):
    conversation = rest(alice).direct(bob.id)
    alice_tab, bob_tab = tabs(alice), tabs(bob)
    alice_tab.open("Bob B.")
    bob_tab.open("Alice A.")

    alice_tab.context.set_offline(True)
    # The browser reports the network gone; the app drops its socket and says so.
    expect(alice_tab.page.locator("#connection-banner")).to_contain_text("offline")
    expect(alice_tab.page.locator("#chat")).not_to_have_attribute("data-connection", "ready")
    assert alice_tab.sockets and all(ws.is_closed() for ws in alice_tab.sockets)

    alice_tab.send("written in a tunnel")
    pending = alice_tab.page.locator("#message-list li.msg.pending")
    expect(pending).to_have_count(1)
    expect(pending).to_contain_text("Sending…")
    expect(alice_tab.page.locator("#connection-banner")).to_contain_text(
        "1 message will be sent when you are back"
    )
    # It waits in the outbox (kept across reloads), not on the server.
    outbox = alice_tab.page.evaluate(f"localStorage.getItem('chat:u{alice.id}:outbox')")
    assert [e["text"] for e in json.loads(outbox)] == ["written in a tunnel"]
    time.sleep(1)
    assert not Message.objects.filter(text="written in a tunnel").exists()
    expect(pending).to_have_count(1)

    alice_tab.context.set_offline(False)
    alice_tab.wait_ready()
    expect(alice_tab.message("written in a tunnel")).to_have_attribute(
        "data-status", re.compile("^(sent|seen)$")
    )
    expect(alice_tab.page.locator("#message-list li.msg.pending")).to_have_count(0)
    expect(bob_tab.message("written in a tunnel")).to_have_count(1)
    expect(alice_tab.page.locator("#connection-banner")).to_be_hidden()

    time.sleep(1)  # anything sent twice would show by now
    assert Message.objects.filter(conversation_id=conversation).count() == 1
    expect(bob_tab.message("written in a tunnel")).to_have_count(1)
    expect(alice_tab.message("written in a tunnel")).to_have_count(1)
    assert alice_tab.page.evaluate(f"localStorage.getItem('chat:u{alice.id}:outbox')") == "[]"


def test_markup_shows_as_text_links_work_and_line_breaks_stay(tabs, rest, alice, bob):
    rest(alice).direct(bob.id)
    alice_tab, bob_tab = tabs(alice), tabs(bob)
    alice_tab.open("Bob B.")
    bob_tab.open("Alice A.")

    evil = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1"> <b>bold</b>'
    alice_tab.send(evil)
    for tab in (alice_tab, bob_tab):
        shown = tab.message(evil)
        expect(shown).to_have_count(1)
        expect(shown.locator(".msg-text")).to_have_text(evil)
        assert (
            tab.page.locator("#message-list img, #message-list script, #message-list b").count()
            == 0
        )
        assert tab.page.evaluate("typeof window.__xss") == "undefined"

    # Shift+Enter breaks the line, Enter sends.
    alice_tab.composer.press_sequentially("line one")
    alice_tab.composer.press("Shift+Enter")
    alice_tab.composer.press_sequentially("line two")
    alice_tab.composer.press("Enter")
    expect(bob_tab.messages()).to_have_count(2)
    assert Message.objects.filter(text="line one\nline two").count() == 1
    text = bob_tab.messages().last.locator(".msg-text")
    assert text.evaluate("el => el.textContent") == "line one\nline two"
    assert text.evaluate("el => getComputedStyle(el).whiteSpace") == "pre-wrap"
    assert text.evaluate("el => el.getBoundingClientRect().height") > 30  # two lines

    alice_tab.send("docs: https://example.org/a?b=1&c=2, not javascript:alert(1)")
    link = bob_tab.messages().last.locator("a")
    expect(link).to_have_count(1)
    expect(link).to_have_attribute("href", "https://example.org/a?b=1&c=2")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_attribute("target", "_blank")


def test_own_messages_can_be_edited_and_deleted(tabs, rest, alice, bob):
    rest(alice).direct(bob.id)
    alice_tab, bob_tab = tabs(alice), tabs(bob)
    alice_tab.open("Bob B.")
    bob_tab.open("Alice A.")
    alice_tab.send("see you at 8")
    expect(bob_tab.message("see you at 8")).to_have_count(1)
    # Only one's own messages can be edited and deleted; others' only reported.
    expect(bob_tab.message("see you at 8").get_by_role("button")).to_have_text(["Report"])

    mine = alice_tab.message("see you at 8")
    mine.hover()
    mine.get_by_role("button", name="Edit message").click()
    editor = alice_tab.page.locator("#message-list .edit-text")
    expect(editor).to_be_focused()
    editor.fill("see you at 9")
    editor.press("Enter")
    edited = bob_tab.message("see you at 9")
    expect(edited).to_have_count(1)
    expect(edited.locator(".edited")).to_have_text("edited")
    expect(alice_tab.message("see you at 9").locator(".edited")).to_be_visible()

    mine = alice_tab.message("see you at 9")
    mine.hover()
    mine.get_by_role("button", name="Delete message").click()
    alice_tab.page.get_by_role("group", name="Delete this message?").get_by_role(
        "button", name="Delete"
    ).click()
    for tab in (alice_tab, bob_tab):
        expect(tab.page.locator("#message-list li.msg.deleted .tombstone")).to_have_text(
            "This message was deleted"
        )
        expect(tab.page.locator("#message-list li.msg.deleted button")).to_have_count(0)
    expect(bob_tab.conversation("Alice A.").locator(".conv-preview")).to_have_text(
        "Message deleted"
    )
    message = Message.objects.get()
    assert message.deleted_at is not None and message.text == ""


def test_older_history_loads_on_scrolling_up(tabs, rest, alice, bob):
    conversation = rest(alice).direct(bob.id)
    bob_phone = rest(bob)
    for n in range(1, 121):
        bob_phone.send(conversation, f"message {n}")
    alice_tab = tabs(alice)
    alice_tab.open("Bob B.")
    expect(alice_tab.messages()).to_have_count(50)
    expect(alice_tab.message("message 120")).to_be_in_viewport()

    scroller = alice_tab.page.locator("#message-scroller")
    scroller.evaluate("el => { el.scrollTop = 0; }")
    expect(alice_tab.messages()).to_have_count(100)
    # The view stays where the reader was, not jumping to the top of the new page.
    expect(alice_tab.message("message 71")).to_be_in_viewport()
    scroller.evaluate("el => { el.scrollTop = 0; }")
    expect(alice_tab.messages()).to_have_count(120)
    expect(alice_tab.page.locator("#load-older")).to_be_hidden()
    seqs = alice_tab.messages().evaluate_all("els => els.map(e => Number(e.dataset.seq))")
    assert seqs == list(range(1, 121))
    # One day, one separator.
    expect(alice_tab.page.locator("#message-list li.day")).to_have_count(1)


NOTIFICATION_RECORDER = """
(() => {
  // Headless chromium cannot hide a tab: emulate it, switchable by the test.
  window.__hidden = false;
  Object.defineProperty(Document.prototype, "visibilityState", {
    get() { return window.__hidden ? "hidden" : "visible"; },
  });
  Object.defineProperty(Document.prototype, "hidden", { get() { return window.__hidden; } });
  // Record what is shown, then show it for real.
  const Real = window.Notification;
  window.__notifications = [];
  function Recording(title, options) {
    window.__notifications.push({ title, body: options && options.body });
    return new Real(title, options);
  }
  Recording.requestPermission = (...args) => Real.requestPermission(...args);
  Object.defineProperty(Recording, "permission", { get: () => Real.permission });
  window.Notification = Recording;
})();
"""


def test_a_hidden_tab_shows_a_system_notification_for_a_new_message(tabs, rest, alice, bob):
    conversation = rest(alice).direct(bob.id)
    alice_tab = tabs(alice, permissions=["notifications"])
    alice_tab.page.add_init_script(NOTIFICATION_RECORDER)
    alice_tab.reload()
    # Permission granted already: no need to offer the button.
    expect(alice_tab.page.locator("#notify-button")).to_be_hidden()

    bob_phone = rest(bob)
    bob_phone.send(conversation, "seen while looking")
    expect(alice_tab.badge("Bob B.")).to_have_text("1")
    alice_tab.page.evaluate("window.__hidden = true")
    bob_phone.send(conversation, "are you there?")
    expect(alice_tab.badge("Bob B.")).to_have_text("2")
    rest(alice).send(conversation, "from my phone")  # her own: no notification
    expect(alice_tab.conversation("Bob B.").locator(".conv-preview")).to_have_text(
        "You: from my phone"
    )
    assert alice_tab.page.evaluate("window.__notifications") == [
        {"title": "Bob B.", "body": "are you there?"}
    ]


def test_notifications_are_offered_with_a_button_when_not_decided(tabs, alice):
    alice_tab = tabs(alice)
    expect(alice_tab.page.get_by_role("button", name="Turn on notifications")).to_be_visible()


def test_the_app_is_usable_on_a_phone_sized_screen(tabs, rest, alice, bob):
    rest(bob).send(rest(alice).direct(bob.id), "hello from bob")
    alice_tab = tabs(alice, viewport=PHONE, is_mobile=True, has_touch=True)
    page = alice_tab.page

    def fits() -> bool:
        return page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    expect(alice_tab.badge("Bob B.")).to_have_text("1")
    assert fits()
    expect(page.locator("#thread")).to_be_hidden()

    alice_tab.open("Bob B.")  # one pane at a time: the list makes way
    expect(page.locator("#conversation-list")).to_be_hidden()
    expect(alice_tab.message("hello from bob")).to_be_visible()
    assert fits()
    alice_tab.send("hi from my phone")
    expect(alice_tab.message("hi from my phone")).to_have_attribute("data-status", "sent")
    # Touch screens have no hover: a tap shows a message's actions.
    alice_tab.message("hi from my phone").locator(".bubble").tap()
    expect(
        alice_tab.message("hi from my phone").get_by_role("button", name="Edit message")
    ).to_be_visible()

    page.get_by_role("link", name="Back to conversations").click()
    expect(page.locator("#conversation-list")).to_be_visible()
    expect(alice_tab.conversation("Bob B.").locator(".conv-preview")).to_have_text(
        "You: hi from my phone"
    )
    assert fits()


def test_a_message_the_server_refuses_shows_failed_with_retry_and_discard(tabs, rest, alice, bob):
    rest(alice).direct(bob.id)
    alice_tab = tabs(alice)
    alice_tab.open("Bob B.")
    alice_tab.composer.fill("nul \x00 inside")  # the server refuses NUL characters
    alice_tab.composer.press("Enter")

    failed = alice_tab.page.locator("#message-list li.msg.failed")
    expect(failed).to_have_count(1)
    expect(failed.locator(".msg-status")).to_have_text("Not sent")
    expect(failed.get_by_role("alert")).to_contain_text("NUL character")
    failed.get_by_role("button", name="Retry").click()  # same id, same answer
    deadline = time.monotonic() + 5
    while len([f for f in alice_tab.frames_sent if f["type"] == "send"]) < 2:
        assert time.monotonic() < deadline, "Retry sent nothing"
        alice_tab.page.wait_for_timeout(50)  # sends are paced: not at the click itself
    expect(failed).to_have_attribute("data-status", "failed")
    sends = [f for f in alice_tab.frames_sent if f["type"] == "send"]
    assert len(sends) == 2 and sends[0]["client_msg_id"] == sends[1]["client_msg_id"]
    failed.get_by_role("button", name="Discard").click()
    expect(alice_tab.page.locator("#message-list li.msg")).to_have_count(0)
    expect(alice_tab.composer).to_be_focused()
    assert not Message.objects.exists()
    assert alice_tab.page.evaluate(f"localStorage.getItem('chat:u{alice.id}:outbox')") == "[]"


def test_a_lost_connection_reconnects_through_discovery_and_resends_unacknowledged(
    tabs, rest, alice, bob
):
    """The socket runs through a proxy in the test (Playwright's WebSocket
    routing), so the test can lose frames and cut the connection like a dying
    chat server would."""
    conversation = rest(alice).direct(bob.id)
    alice_tab, bob_tab = tabs(alice), tabs(bob)
    page = alice_tab.page
    lose = {"send_of": None, "answers": False}
    proxies = []

    def proxy(ws) -> None:
        server = ws.connect_to_server()
        proxies.append(ws)

        def to_server(message) -> None:
            frame = json.loads(message)
            if frame.get("type") == "send" and frame["text"] == lose["send_of"]:
                return  # lost on the way: never stored
            server.send(message)

        def to_page(message) -> None:
            if not lose["answers"]:
                ws.send(message)

        ws.on_message(to_server)
        server.on_message(to_page)

    page.route_web_socket(re.compile(r"/ws/chat/$"), proxy)
    discoveries = []
    page.on("request", lambda r: "/api/v1/chat-server/" in r.url and discoveries.append(r.url))
    alice_tab.reload()
    alice_tab.open("Bob B.")
    bob_tab.open("Alice A.")
    assert len(proxies) == 1 and len(discoveries) == 1

    # One send never reaches the server; for the next one, the server stores it
    # but its ack (and event) never come back. Then the connection dies.
    lose["send_of"] = "lost on the way"
    alice_tab.send("lost on the way")
    expect(bob_tab.messages()).to_have_count(0)
    lose["answers"] = True
    alice_tab.send("stored, ack lost")
    expect(bob_tab.message("stored, ack lost")).to_have_count(1)
    expect(page.locator("#message-list li.msg.pending")).to_have_count(2)

    # Discovery fails for a while: the client keeps backing off and says so.
    page.route("**/api/v1/chat-server/", lambda route: route.abort())
    lose["send_of"], lose["answers"] = None, False
    proxies[0].close(code=1011, reason="chat server died")
    expect(page.locator("#connection-banner")).to_contain_text("Connection lost")
    expect(page.locator("#connection-banner")).to_contain_text("2 messages will be sent")
    deadline = time.monotonic() + 10
    while len(discoveries) < 3:  # the first try and at least one retry, both refused
        assert time.monotonic() < deadline, f"no retries: {discoveries}"
        page.wait_for_timeout(100)
    assert len(proxies) == 1  # no socket without asking discovery first
    page.unroute("**/api/v1/chat-server/")
    # "Reconnect now" skips the wait (if a retry is not under way already).
    page.evaluate("document.querySelector('#connection-banner button')?.click()")

    alice_tab.wait_ready()
    expect(page.locator("#message-list li.msg.pending")).to_have_count(0)
    for tab in (alice_tab, bob_tab):
        expect(tab.message("lost on the way")).to_have_count(1)
        expect(tab.message("stored, ack lost")).to_have_count(1)
    expect(page.locator("#connection-banner")).to_be_hidden()
    assert len(proxies) == 2
    texts = list(
        Message.objects.filter(conversation_id=conversation)
        .order_by("seq")
        .values_list("text", flat=True)
    )
    assert sorted(texts) == ["lost on the way", "stored, ack lost"]


def test_the_keyboard_alone_reaches_a_conversation_and_sends(tabs, rest, alice, bob):
    rest(bob).send(rest(alice).direct(bob.id), "ping")
    alice_tab = tabs(alice)
    page = alice_tab.page
    link = alice_tab.conversation("Bob B.")
    for _ in range(15):
        page.keyboard.press("Tab")
        if link.evaluate("el => el === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the conversation")
    page.keyboard.press("Enter")
    expect(alice_tab.message("ping")).to_be_visible()
    expect(alice_tab.composer).to_be_focused()
    page.keyboard.type("pong")
    page.keyboard.press("Enter")
    expect(alice_tab.message("pong")).to_have_attribute("data-status", re.compile("sent|seen"))
    # New messages are announced: the history is a polite live region.
    expect(page.locator("#message-list")).to_have_attribute("aria-live", "polite")
    expect(page.get_by_role("log", name="Message history")).to_be_visible()


def test_someone_elses_message_can_be_reported_to_the_moderators(tabs, rest, alice, bob):
    bob_phone = rest(bob)
    conversation = bob_phone.direct(alice.id)
    bob_phone.send(conversation, "click my link for free money")
    alice_tab = tabs(alice)
    alice_tab.open("Bob B.")
    theirs = alice_tab.message("click my link for free money")
    theirs.hover()
    theirs.get_by_role("button", name="Report message").click()

    form = alice_tab.page.get_by_role("group", name="Report this message")
    reason = form.get_by_label("Report to the moderators, reason:")
    expect(reason).to_be_focused()
    # No reason is chosen for the reporter.
    form.get_by_role("button", name="Report").click()
    expect(alice_tab.page.locator("#toast")).to_have_text("Choose a reason first.")
    reason.select_option("abuse")
    note = form.get_by_label("Note for the moderators")
    note.fill("sent to everyone")
    # Bob edits the message while the form is open: what Alice chose and typed stays.
    bob_phone.call(
        "PATCH",
        f"messages/{theirs.get_attribute('data-message-id')}/",
        {"text": "click my link for cheap money"},
    )
    expect(alice_tab.message("click my link for cheap money")).to_have_count(1)
    expect(note).to_be_focused()
    expect(reason).to_have_value("abuse")
    note.press("Enter")

    expect(alice_tab.page.locator("#toast")).to_have_text(
        "Reported. The moderators will look at it."
    )
    expect(form).to_have_count(0)
    expect(alice_tab.page.get_by_role("button", name="Report message")).to_have_count(0)
    report = Report.objects.get()
    assert (report.reporter_id, report.reason, report.note) == (
        alice.id,
        "abuse",
        "sent to everyone",
    )
    assert report.text == "click my link for cheap money"


def test_the_report_form_closes_with_escape_and_on_the_messages_deletion(tabs, rest, alice, bob):
    bob_phone = rest(bob)
    conversation = bob_phone.direct(alice.id)
    sent = bob_phone.send(conversation, "regrettable words")
    alice_tab = tabs(alice)
    alice_tab.open("Bob B.")
    theirs = alice_tab.message("regrettable words")
    theirs.hover()
    button = theirs.get_by_role("button", name="Report message")
    button.click()
    form = alice_tab.page.get_by_role("group", name="Report this message")
    form.get_by_label("Note for the moderators").press("Escape")
    expect(form).to_have_count(0)
    expect(theirs.get_by_role("button", name="Report message")).to_be_focused()

    theirs.get_by_role("button", name="Report message").click()
    form.get_by_label("Note for the moderators").fill("hm")
    bob_phone.call("DELETE", f"messages/{sent['id']}/")

    expect(alice_tab.page.locator("#toast")).to_have_text(
        "That message was deleted; there is nothing left to report."
    )
    expect(form).to_have_count(0)
    expect(alice_tab.composer).to_be_focused()
    assert not Report.objects.exists()


def test_a_report_on_its_way_cannot_be_sent_twice(tabs, rest, alice, bob):
    bob_phone = rest(bob)
    sent = bob_phone.send(bob_phone.direct(alice.id), "sketchy offer")
    alice_tab = tabs(alice)
    page = alice_tab.page
    alice_tab.open("Bob B.")
    held = []  # the report's request, held until the message was redrawn
    page.route("**/report/", lambda route: held.append(route))
    reports = []

    def count(request) -> None:
        if "/report/" in request.url:
            reports.append(request)

    page.on("request", count)
    theirs = alice_tab.message("sketchy offer")
    theirs.hover()
    theirs.get_by_role("button", name="Report message").click()
    form = page.get_by_role("group", name="Report this message")
    form.get_by_label("Report to the moderators, reason:").select_option("spam")
    with page.expect_request("**/report/"):
        form.get_by_role("button", name="Report").click()
    for _ in range(100):  # the route's handler runs on Playwright's next event
        if held:
            break
        page.wait_for_timeout(20)
    assert len(held) == 1
    # Bob edits it meanwhile: the form is redrawn, its button still disabled.
    bob_phone.call("PATCH", f"messages/{sent['id']}/", {"text": "sketchy offer!"})
    expect(alice_tab.message("sketchy offer!")).to_have_count(1)
    send_button = form.get_by_role("button", name="Report")
    expect(send_button).to_be_disabled()
    send_button.click(force=True)
    held[0].continue_()

    expect(page.locator("#toast")).to_have_text("Reported. The moderators will look at it.")
    assert len(reports) == 1
    assert Report.objects.count() == 1
