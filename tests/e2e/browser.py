"""Driving the web app in Debian's chromium through Playwright (sync API).

`playwright install` would download a browser build of its own, which an
offline machine cannot: the tests launch /usr/bin/chromium (`make test`
installs Debian's package when it is missing).
"""

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    WebSocket,
    expect,
    sync_playwright,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
DESKTOP = {"width": 1200, "height": 800}
PHONE = {"width": 375, "height": 740}

# Everything the app does live should show within this (ms); a failure waits no longer.
expect.set_options(timeout=8000)


@contextmanager
def allow_orm_beside_playwright() -> Iterator[None]:
    """The sync API keeps an event loop of its own, which makes Django refuse ORM
    calls from this thread. Our ORM calls are plain sync code between browser
    steps, so allow them, for the browser tests only."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@contextmanager
def chromium() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(
            f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium) or "
            "`apt-get install -y chromium`."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class ChatTab:
    """One user's browser tab on the chat app, with the steps a person takes."""

    page: Page
    base_url: str
    errors: list[str] = field(default_factory=list)
    sockets: list[WebSocket] = field(default_factory=list)
    frames_sent: list[dict] = field(default_factory=list)
    frames_received: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("websocket", self._watch_socket)

    def _watch_socket(self, ws: WebSocket) -> None:
        self.sockets.append(ws)
        ws.on("framesent", lambda payload: self.frames_sent.append(json.loads(payload)))
        ws.on("framereceived", lambda payload: self.frames_received.append(json.loads(payload)))

    def hellos(self) -> list[dict]:
        return [frame for frame in self.frames_sent if frame.get("type") == "hello"]

    @property
    def context(self) -> BrowserContext:
        return self.page.context

    def log_in(self, username: str, password: str) -> None:
        """Through the real log-in page, as a person would."""
        self.page.goto(f"{self.base_url}/login/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()
        self.wait_ready()

    def wait_ready(self) -> None:
        expect(self.page.locator("#chat")).to_have_attribute("data-connection", "ready")

    def reload(self) -> None:
        self.page.reload()
        self.wait_ready()

    # --- the conversation list ---------------------------------------------------

    def conversation(self, title: str) -> Locator:
        return self.page.locator("a.conv").filter(
            has=self.page.locator(".conv-name").get_by_text(title, exact=True)
        )

    def badge(self, title: str) -> Locator:
        return self.conversation(title).locator(".badge")

    def open(self, title: str) -> None:
        self.conversation(title).click()
        expect(self.page.locator("#thread-title")).to_have_text(title)
        expect(self.page.locator("#message-scroller")).not_to_have_class(re.compile("loading"))

    # --- the open conversation ----------------------------------------------------

    @property
    def composer(self) -> Locator:
        return self.page.locator("#composer-text")

    def send(self, text: str) -> None:
        self.composer.fill(text)
        self.composer.press("Enter")

    def messages(self) -> Locator:
        return self.page.locator("#message-list li.msg")

    def message(self, text: str) -> Locator:
        """Messages whose text is exactly `text`."""
        return self.messages().filter(
            has=self.page.locator(".msg-text").get_by_text(text, exact=True)
        )

    def typing(self) -> Locator:
        return self.page.locator("#typing")
