"""Groups in the web app, in a real browser: creating one of the largest size
from the UI, and managing its members. Cast: alice owns, bob is a member,
charlie gets added."""

import pytest
from django.contrib.auth.hashers import make_password
from playwright.sync_api import expect

from accounts.models import User
from messaging.models import Conversation, Membership
from tests.conftest import PASSWORD
from tests.e2e.fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_100_member_group_can_be_created_from_the_ui(tabs, alice, bob):
    password = make_password(PASSWORD)
    User.objects.bulk_create(
        User(username=f"member{n:03}", display_name=f"Member {n}", password=password)
        for n in range(1, 100)
    )
    alice_tab = tabs(alice)
    page = alice_tab.page
    page.get_by_role("button", name="New group").click()
    dialog = page.get_by_role("dialog", name="New group")
    dialog.get_by_label("Title").fill("Everyone")
    dialog.get_by_label("Add people").fill("member")
    expect(dialog.locator("#group-results li")).to_have_count(20)

    # One click takes every match, across all pages of the search.
    dialog.get_by_role("button", name="Add all matches").click()
    expect(dialog.locator(".picker-count")).to_have_text("99 selected · room for 0 more")
    expect(dialog.locator(".chip")).to_have_count(99)
    # The group is full: nobody else can be picked.
    dialog.get_by_label("Add people").fill("bob")
    bob_box = dialog.locator("#group-results label", has_text="Bob B.").locator("input")
    bob_box.click()
    expect(bob_box).not_to_be_checked()
    expect(dialog.locator(".picker-message")).to_contain_text("at most 100 members")

    dialog.get_by_role("button", name="Create group").click()
    expect(page.locator("#thread-title")).to_have_text("Everyone")
    expect(page.locator("#thread-subtitle")).to_have_text("100 members")
    expect(alice_tab.conversation("Everyone")).to_be_visible()

    group = Conversation.objects.get(title="Everyone")
    members = Membership.objects.filter(conversation=group)
    assert members.count() == 100
    assert members.get(role="owner").user_id == alice.id
    assert not members.filter(user_id=bob.id).exists()

    # Everyone can talk in it right away.
    alice_tab.send("Welcome, all 99 of you!")
    expect(alice_tab.message("Welcome, all 99 of you!")).to_have_attribute("data-status", "sent")


def test_group_members_are_seen_added_removed_and_can_leave(tabs, rest, alice, bob, charlie):
    rest(alice).group("Team", [bob.id])
    alice_tab, bob_tab = tabs(alice), tabs(bob)
    alice_tab.open("Team")
    bob_tab.open("Team")
    expect(bob_tab.page.locator("#thread-subtitle")).to_have_text("2 members")

    # Alice (the owner) adds Charlie.
    alice_tab.page.get_by_role("button", name="Members").click()
    dialog = alice_tab.page.get_by_role("dialog")
    expect(dialog.locator("#members-list li")).to_have_count(2)
    expect(dialog.locator("#members-list li", has_text="Alice A.")).to_contain_text("owner")
    dialog.get_by_label("Add people").fill("charl")
    dialog.locator("#members-results label", has_text="Charlie C.").click()
    dialog.get_by_role("button", name="Add selected").click()
    expect(dialog.locator("#members-list li")).to_have_count(3)
    expect(bob_tab.page.locator("#thread-subtitle")).to_have_text("3 members")

    # Bob, a plain member, sees the members but cannot manage them.
    bob_tab.page.get_by_role("button", name="Members").click()
    bob_dialog = bob_tab.page.get_by_role("dialog")
    expect(bob_dialog.locator("#members-list li")).to_have_count(3)
    expect(bob_dialog.get_by_role("button", name="Remove Charlie C.")).to_have_count(0)
    # Alice makes him an admin: his open dialog gains the controls, live.
    dialog.get_by_role("button", name="Make admin: Bob B.").click()
    expect(dialog.locator("#members-list li", has_text="Bob B.")).to_contain_text("admin")
    expect(bob_dialog.get_by_role("button", name="Remove Charlie C.")).to_be_visible()
    assert Membership.objects.get(user_id=bob.id).role == "admin"
    # He leaves.
    leave = bob_dialog.get_by_role("button", name="Leave group")
    leave.click()
    bob_dialog.get_by_role("button", name="Really leave? Click again").click()
    expect(bob_tab.conversation("Team")).to_have_count(0)
    expect(bob_tab.page.locator("#thread-main")).to_be_hidden()
    expect(dialog.locator("#members-list li")).to_have_count(2)  # Alice's dialog, live

    # Alice removes Charlie.
    dialog.get_by_role("button", name="Remove Charlie C.").click()
    expect(dialog.locator("#members-list li")).to_have_count(1)
    dialog.get_by_role("button", name="Close").click()
    expect(alice_tab.page.locator("#thread-subtitle")).to_have_text("1 member")
    group = Conversation.objects.get(title="Team")
    assert list(
        Membership.objects.filter(conversation=group).values_list("user_id", flat=True)
    ) == [alice.id]


def test_someone_added_while_online_has_nothing_unread_from_before(tabs, rest, alice, bob, charlie):
    team = rest(alice).group("Team", [bob.id])
    for n in range(3):
        rest(bob).send(team, f"before charlie {n}")
    charlie_tab = tabs(charlie)

    rest(alice).call("POST", f"conversations/{team}/members/", {"user_ids": [charlie.id]})
    expect(charlie_tab.conversation("Team")).to_be_visible()
    expect(charlie_tab.badge("Team")).to_have_count(0)

    rest(bob).send(team, "welcome, charlie")
    expect(charlie_tab.badge("Team")).to_have_text("1")
