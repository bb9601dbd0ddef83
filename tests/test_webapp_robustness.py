"""The web app under hostile or unlucky conditions, in a real browser (Debian's
chromium through Playwright) against live daphne, PostgreSQL and Redis: huge
messages, presence out of order, revoked credentials, a flood of resends.
Cast: alice and bob; a "REST device" is one of their other devices."""

import time

import pytest
from playwright.sync_api import expect

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
