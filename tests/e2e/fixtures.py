"""Fixtures of the browser tests; a test module takes them with
`from tests.e2e.fixtures import *`. The browser is started once per module."""

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser

from tests.conftest import Member
from tests.e2e.browser import DESKTOP, ChatTab, allow_orm_beside_playwright, chromium
from tests.e2e.rest import RestDevice

__all__ = ["browser", "orm_beside_playwright", "rest", "tabs"]


@pytest.fixture(scope="module", autouse=True)
def orm_beside_playwright() -> Iterator[None]:
    with allow_orm_beside_playwright():
        yield


@pytest.fixture(scope="module")
def browser(orm_beside_playwright: None) -> Iterator[Browser]:
    with chromium() as instance:
        yield instance


@pytest.fixture
def tabs(browser: Browser, live_daphne) -> Iterator[Callable[..., ChatTab]]:
    """open(member, viewport=..., **context options): a fresh browser profile
    (own cookies and localStorage) with the member logged in on the app."""
    opened: list[ChatTab] = []

    def open_tab(member: Member, *, viewport: dict = DESKTOP, **options: object) -> ChatTab:
        context = browser.new_context(viewport=viewport, **options)
        tab = ChatTab(context.new_page(), live_daphne.url)
        opened.append(tab)
        tab.log_in(member.user.username, member.password)
        return tab

    yield open_tab
    errors = [error for tab in opened for error in tab.errors]
    for tab in opened:
        tab.context.close()
    assert errors == [], f"script errors in the page: {errors}"


@pytest.fixture
def rest(live_daphne) -> Callable[[Member], RestDevice]:
    """rest(member): that member's other device, talking REST to the live server."""
    return lambda member: RestDevice(live_daphne.url, member.token)
