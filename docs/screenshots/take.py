"""Take the README's screenshots of the web app: `make screenshots`.

Self-contained: runs the embedded default (SQLite, in-memory channel layer) in
a temporary VAR_DIR, seeds a small cast with a few conversations, starts
daphne on a free port, and drives Debian's chromium headless through
Playwright. The PNGs land next to this file.

    .venv/bin/python docs/screenshots/take.py
"""

import os
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
PASSWORD = "screenshot-pass-1"
DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 375, "height": 740}

CAST = [
    ("alice", "Alice Liddell"),
    ("bob", "Bob Marley"),
    ("carol", "Carol Danvers"),
    ("dave", "Dave Bowman"),
    ("ada", "Ada Lovelace"),
    ("grace", "Grace Hopper"),
    ("alan", "Alan Turing"),
    ("katherine", "Katherine Johnson"),
    ("margaret", "Margaret Hamilton"),
    ("hedy", "Hedy Lamarr"),
]


def environment(var_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        VAR_DIR=str(var_dir),
        DEBUG="1",
        SECRET_KEY="screenshots-only-not-secret",
        DJANGO_SETTINGS_MODULE="chatproject.settings",
        LOG_LEVEL="WARNING",
    )
    return env


def seed() -> None:
    """Conversations that look lived-in: yesterday and today, unread, a group."""
    import django

    django.setup()
    from django.utils import timezone

    from accounts.models import User
    from messaging import services
    from messaging.models import Conversation, Message

    users = {}
    for username, name in CAST:
        users[username] = User.objects.create_user(
            username=username, password=PASSWORD, display_name=name
        )
    alice, bob, carol, dave = (users[n] for n in ("alice", "bob", "carol", "dave"))
    counter = iter(range(1, 10_000))

    def say(conv: Conversation, who: User, text: str) -> Message:
        return services.message_send(
            sender_id=who.pk,
            conversation_id=conv.pk,
            client_msg_id=f"seed-{next(counter)}",
            text=text,
        ).message

    def backdate(messages: list[Message], minutes_ago: list[int]) -> None:
        now = timezone.now()
        for message, minutes in zip(messages, minutes_ago, strict=True):
            Message.objects.filter(pk=message.pk).update(
                created_at=now - timedelta(minutes=minutes)
            )

    def touch(conv: Conversation, minutes_ago: int) -> None:
        Conversation.objects.filter(pk=conv.pk).update(
            last_activity_at=timezone.now() - timedelta(minutes=minutes_ago)
        )

    dave_chat, _ = services.conversation_direct_get_or_create(user=alice, other_user_id=dave.pk)
    sent = [
        say(dave_chat, dave, "Open the pod bay doors, please."),
        say(dave_chat, alice, "On it!"),
    ]
    backdate(sent, [60 * 24 * 3, 60 * 24 * 3 - 2])
    touch(dave_chat, 60 * 24 * 3 - 2)

    trip = services.conversation_group_create(
        owner=alice, title="Weekend trip", member_ids=[bob.pk, carol.pk, dave.pk]
    )
    sent = [
        say(trip, carol, "Cabin is booked for Saturday and Sunday"),
        say(trip, dave, "I can drive. Leaving at 9?"),
        say(trip, alice, "9 works. I'll bring the coffee."),
        say(trip, bob, "Map of the trail: https://example.org/trails/lakeside"),
    ]
    backdate(sent, [200, 190, 185, 95])
    touch(trip, 95)

    carol_chat, _ = services.conversation_direct_get_or_create(user=alice, other_user_id=carol.pk)
    sent = [say(carol_chat, carol, "Did you see the photos?"), say(carol_chat, carol, "The lake!")]
    backdate(sent, [42, 41])
    touch(carol_chat, 41)

    bob_chat, _ = services.conversation_direct_get_or_create(user=alice, other_user_id=bob.pk)
    sent = [
        say(bob_chat, bob, "Hey Alice! Are we still on for the concert?"),
        say(bob_chat, alice, "Yes! Doors open at 7.\nI have the tickets on my phone."),
        say(bob_chat, bob, "Perfect. Setlist from last night: https://example.org/setlist"),
        say(bob_chat, alice, "Thanks, listening now"),
        say(bob_chat, bob, "Meet at the usual place?"),
        say(bob_chat, alice, "See you at 6:30 by the fountain."),
    ]
    backdate(sent, [60 * 30, 60 * 30 - 3, 60 * 30 - 5, 12, 8, 6])
    touch(bob_chat, 6)
    services.conversation_mark_read(user_id=bob.pk, conversation_id=bob_chat.pk, seq=6)


def watch(page) -> None:
    """Print the page's script errors: a screenshot of a broken app is no use."""
    page.on("pageerror", lambda error: print(f"page error: {error}", file=sys.stderr))
    page.on(
        "console",
        lambda msg: msg.type == "error" and print(f"console: {msg.text}", file=sys.stderr),
    )


def conversation(page, title: str):
    return page.locator("a.conv").filter(
        has=page.locator(".conv-name").get_by_text(title, exact=True)
    )


def log_in(page, base: str, username: str) -> None:
    watch(page)
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#chat[data-connection=ready]")


def shoot(base: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS  # the tests' launch options

        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=DESKTOP).new_page()
            page.goto(f"{base}/login/")
            page.screenshot(path=OUT / "login.png")

            # Bob is online and typing, so Alice sees a green dot and "typing…".
            bob = browser.new_context(viewport=DESKTOP).new_page()
            log_in(bob, base, "bob")

            log_in(page, base, "alice")
            conversation(page, "Bob Marley").click()
            page.wait_for_selector(".msg[data-status=seen]")
            conversation(bob, "Alice Liddell").click()
            bob.locator("#composer-text").fill("On my way")
            page.wait_for_selector("#typing:has-text('typing')")
            page.mouse.move(0, 0)
            page.screenshot(path=OUT / "app.png")

            page.get_by_role("button", name="New group").click()
            page.locator("#group-title").fill("Book club")
            page.locator("#group-search").fill("a")
            page.wait_for_selector("#group-results li")
            for name in ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Katherine Johnson"):
                page.locator("#group-results label", has_text=name).click()
            page.screenshot(path=OUT / "group-create.png")
            page.keyboard.press("Escape")

            conversation(page, "Weekend trip").click()
            page.get_by_role("button", name="Members").click()
            page.wait_for_selector("#members-list li")
            page.screenshot(path=OUT / "members.png")
            page.keyboard.press("Escape")

            # The network goes: a banner says so, and what Alice writes waits.
            conversation(page, "Bob Marley").click()
            page.context.set_offline(True)
            page.wait_for_selector("#connection-banner:has-text('offline')")
            page.locator("#composer-text").fill("Running late, 10 minutes!")
            page.locator("#composer-text").press("Enter")
            page.wait_for_selector("#message-list li.msg.pending")
            page.screenshot(path=OUT / "offline.png")
            page.context.set_offline(False)

            phone = browser.new_context(viewport=MOBILE, device_scale_factor=2, is_mobile=True)
            mobile = phone.new_page()
            log_in(mobile, base, "alice")
            mobile.screenshot(path=OUT / "mobile-list.png")
            conversation(mobile, "Weekend trip").click()
            mobile.wait_for_selector(".msg .msg-text >> text=Map of the trail")
            mobile.screenshot(path=OUT / "mobile-thread.png")
        finally:
            browser.close()


def main() -> None:
    var_dir = Path(tempfile.mkdtemp(prefix="chat-screenshots-"))
    env = environment(var_dir)
    os.environ.clear()
    os.environ.update(env)
    daphne = None
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True
        )
        sys.path.insert(0, str(ROOT))
        seed()
        from tests.support.servers import start_daphne  # the tests' server runner

        daphne = start_daphne({}, var_dir, name="screenshots")
        base = daphne.url
        shoot(base)
        print(f"screenshots written to {OUT}")
    finally:
        if daphne is not None:
            daphne.stop()
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
