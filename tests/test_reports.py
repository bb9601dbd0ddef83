"""Reporting a message to the moderators, and the moderators' queue in the admin.
Cast: alice sends, bob and carol report, dave is outside, a moderator (staff)."""

import threading
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone

from messaging.models import InboxEvent, Message, Report
from messaging.reports import reports_forget_closed
from tests.messaging_helpers import api, direct, group, send
from tests.support.ws import open_socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def carol(make_member):
    return make_member("carol")


def report(member, message_id, **body):
    return api(member).post(
        f"/api/v1/messages/{message_id}/report/", {"reason": "abuse", **body}, format="json"
    )


def test_a_member_reports_a_message_and_the_moderator_sees_what_they_saw(moderator, alice, bob):
    conversation = direct(alice, bob)
    message = send(alice, conversation, "you are an idiot").json()["message"]
    send(alice, group(alice, bob), "elsewhere")

    response = report(bob, message["id"], note="  third time this week  ")
    # The sender edits it afterwards: the report keeps the reported words.
    api(alice).patch(f"/api/v1/messages/{message['id']}/", {"text": "hello"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["message_id"] == message["id"]
    assert (body["reason"], body["note"], body["status"]) == (
        "abuse",
        "third time this week",
        "open",
    )
    stored = Report.objects.get()
    assert stored.text == "you are an idiot"
    assert stored.reporter_id == bob.id
    queue = moderator.get("/admin/messaging/report/")
    assert queue.status_code == 200
    assert b"you are an idiot" in queue.content
    assert b"edited since" in queue.content  # the moderator sees it changed
    page = moderator.get(f"/admin/messaging/report/{stored.pk}/change/")
    assert b"third time this week" in page.content
    assert f"/admin/accounts/user/{alice.id}/change/".encode() in page.content
    # The conversation's messages, for context, one click away.
    around = f"/admin/messaging/message/?conversation__exact={conversation}"
    assert around.replace("&", "&amp;").encode() in page.content
    context = moderator.get(around)
    assert context.status_code == 200
    assert b"hello" in context.content
    assert b"elsewhere" not in context.content


def test_the_report_keeps_the_words_the_sender_deletes_and_tells_the_sender_nothing(alice, bob):
    conversation = direct(alice, bob)
    message = send(alice, conversation, "meet me outside, or else").json()["message"]
    head = InboxEvent.objects.filter(user_id=alice.id).count()

    report(bob, message["id"])
    api(alice).delete(f"/api/v1/messages/{message['id']}/")

    assert Report.objects.get().text == "meet me outside, or else"
    # Alice's inbox got her own deletion's event, nothing about a report.
    kinds = list(
        InboxEvent.objects.filter(user_id=alice.id).order_by("seq").values_list("kind", flat=True)
    )
    assert kinds[head:] == ["message.deleted"]


def test_reporting_again_answers_with_the_first_report(alice, bob):
    message = send(alice, direct(alice, bob), "buy cheap watches").json()["message"]

    first = report(bob, message["id"], reason="spam")
    again = report(bob, message["id"], reason="other", note="changed my mind")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Report.objects.count() == 1


def test_two_reports_at_once_make_one(alice, bob):
    message = send(alice, direct(alice, bob), "spam spam").json()["message"]
    barrier = threading.Barrier(2)
    codes = []

    def tap():
        try:
            barrier.wait()
            codes.append(report(bob, message["id"]).status_code)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=tap) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(codes) == [200, 201]
    assert Report.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "boring"}, "reason"),
        ({"reason": None}, "reason"),
        ({"note": "x" * 501}, "note"),
        ({"note": 5}, "note"),
    ],
)
def test_bad_input_is_refused_with_the_field_named(alice, bob, body, field):
    message = send(alice, direct(alice, bob), "hi").json()["message"]

    response = report(bob, message["id"], **body)

    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not Report.objects.exists()


def test_a_report_needs_a_reason(alice, bob):
    message = send(alice, direct(alice, bob), "hi").json()["message"]

    response = api(bob).post(f"/api/v1/messages/{message['id']}/report/", {}, format="json")

    assert response.status_code == 400
    assert "reason" in response.json()["fields"]


def test_own_and_deleted_messages_cannot_be_reported(alice, bob):
    conversation = direct(alice, bob)
    own = send(bob, conversation, "mine").json()["message"]
    gone = send(alice, conversation, "oops").json()["message"]
    api(alice).delete(f"/api/v1/messages/{gone['id']}/")

    mine = report(bob, own["id"])
    deleted = report(bob, gone["id"])

    assert (mine.status_code, mine.json()["code"]) == (400, "own_message")
    assert (deleted.status_code, deleted.json()["code"]) == (400, "message_deleted")
    assert not Report.objects.exists()


def test_outsiders_and_former_members_get_404_and_report_nothing(alice, bob, carol, make_member):
    dave = make_member("dave")
    conversation = group(alice, bob, carol)
    message = send(alice, conversation, "team news").json()["message"]
    api(carol).delete(f"/api/v1/conversations/{conversation}/members/{carol.id}/")

    outsider = report(dave, message["id"])
    former = report(carol, message["id"])
    missing = report(bob, message["id"] + 1000)
    anonymous = api().post(
        f"/api/v1/messages/{message['id']}/report/", {"reason": "spam"}, format="json"
    )

    for response in (outsider, former, missing):
        assert (response.status_code, response.json()["code"]) == (404, "message_not_found")
    assert anonymous.status_code == 401
    assert not Report.objects.exists()


def test_a_moderator_deletes_a_reported_message_live_and_closes_every_report_of_it(
    live_daphne, moderator, alice, bob, carol
):
    conversation = group(alice, bob, carol)
    message = send(alice, conversation, "nasty words").json()["message"]
    other = send(alice, conversation, "harmless").json()["message"]
    report(bob, message["id"])
    report(carol, message["id"], reason="other")
    report(bob, other["id"], reason="spam")
    bobs = Report.objects.get(reporter_id=bob.id, message_id=message["id"])

    sock = open_socket(live_daphne.ws_url, token=carol.token)
    with sock:
        sock.send({"type": "hello", "cursor": None})
        sock.expect("ready")
        response = moderator.post(
            "/admin/messaging/report/",
            {"action": "delete_messages", "_selected_action": [bobs.pk]},
            follow=True,
        )
        event = sock.expect("event", kind="message.deleted")

    assert b"Deleted 1 message(s) and closed 2 report(s)." in response.content
    assert event["message"]["id"] == message["id"]
    assert Message.objects.get(pk=message["id"]).deleted_at is not None
    closed = Report.objects.filter(message_id=message["id"])
    assert {r.status for r in closed} == {Report.Status.ACTIONED}
    assert all(r.resolved_by is not None and r.resolved_at for r in closed)
    # The report of the other message stays open, and that message stays.
    untouched = Report.objects.get(message_id=other["id"])
    assert untouched.status == Report.Status.OPEN
    assert Message.objects.get(pk=other["id"]).deleted_at is None
    assert LogEntry.objects.filter(change_message="Closed: Message deleted").count() == 2
    assert LogEntry.objects.filter(change_message="Deleted by a moderator (reported)").count() == 1


def test_a_report_after_the_moderator_took_the_message_down_is_refused(
    moderator, alice, bob, carol
):
    conversation = group(alice, bob, carol)
    message = send(alice, conversation, "nasty words").json()["message"]
    report(bob, message["id"])
    moderator.post(
        "/admin/messaging/report/",
        {"action": "delete_messages", "_selected_action": [Report.objects.get().pk]},
    )

    late = report(carol, message["id"])

    assert (late.status_code, late.json()["code"]) == (400, "message_deleted")
    assert Report.objects.filter(status=Report.Status.OPEN).count() == 0


def test_deleting_from_a_closed_report_changes_nothing(moderator, alice, bob):
    message = send(alice, direct(alice, bob), "fine after all").json()["message"]
    report(bob, message["id"])
    stored = Report.objects.get()
    moderator.post(
        "/admin/messaging/report/", {"action": "dismiss", "_selected_action": [stored.pk]}
    )

    response = moderator.post(
        "/admin/messaging/report/",
        {"action": "delete_messages", "_selected_action": [stored.pk], "status": "all"},
        follow=True,
    )

    assert b"Deleted 0 message(s) and closed 0 report(s)." in response.content
    assert Message.objects.get().deleted_at is None
    stored.refresh_from_db()
    assert stored.status == Report.Status.DISMISSED


def test_a_message_already_deleted_is_not_logged_as_deleted_again(moderator, alice, bob):
    conversation = direct(alice, bob)
    message = send(alice, conversation, "rude").json()["message"]
    report(bob, message["id"])
    api(alice).delete(f"/api/v1/messages/{message['id']}/")

    response = moderator.post(
        "/admin/messaging/report/",
        {"action": "delete_messages", "_selected_action": [Report.objects.get().pk]},
        follow=True,
    )

    assert b"Deleted 0 message(s) and closed 1 report(s)." in response.content
    # Closed as what happened: the sender had taken it back.
    assert Report.objects.get().status == Report.Status.WITHDRAWN
    assert not LogEntry.objects.filter(change_message__startswith="Deleted by").exists()


def test_the_queue_shows_open_reports_unless_asked_for_all(moderator, alice, bob):
    conversation = direct(alice, bob)
    first = send(alice, conversation, "first rude thing").json()["message"]
    second = send(alice, conversation, "second rude thing").json()["message"]
    report(bob, first["id"])
    report(bob, second["id"])
    moderator.post(
        "/admin/messaging/report/",
        {
            "action": "dismiss",
            "_selected_action": [Report.objects.get(message_id=first["id"]).pk],
        },
    )

    queue = moderator.get("/admin/messaging/report/")
    everything = moderator.get("/admin/messaging/report/", {"status": "all"})

    assert b"second rude thing" in queue.content
    assert b"first rude thing" not in queue.content
    assert b"first rude thing" in everything.content


def test_staff_who_may_only_view_reports_cannot_act_on_them(make_member, alice, bob):
    viewer = make_member("viewer", is_staff=True)
    viewer.user.user_permissions.add(Permission.objects.get(codename="view_report"))
    client = Client()
    client.force_login(viewer.user)
    message = send(alice, direct(alice, bob), "borderline").json()["message"]
    report(bob, message["id"])
    stored = Report.objects.get()

    queue = client.get("/admin/messaging/report/")
    for action in ("delete_messages", "dismiss"):
        client.post("/admin/messaging/report/", {"action": action, "_selected_action": [stored.pk]})

    assert queue.status_code == 200
    assert b"borderline" in queue.content
    assert b"delete_messages" not in queue.content
    stored.refresh_from_db()
    assert stored.status == Report.Status.OPEN
    assert Message.objects.get().deleted_at is None


def test_reports_per_user_are_limited(settings, alice, bob):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "report": "2/hour",
        },
    }
    cache.delete(f"throttle_report_{bob.id}")
    conversation = direct(alice, bob)
    ids = [send(alice, conversation, f"spam {n}").json()["message"]["id"] for n in range(3)]

    own = send(bob, conversation, "mine").json()["message"]["id"]

    answers = [
        report(bob, ids[0], reason="boring").status_code,  # refused: does not count
        report(bob, ids[0]).status_code,
        report(bob, ids[0]).status_code,  # a repeat: does not count
        report(bob, own).status_code,  # refused: does not count
        report(bob, ids[1]).status_code,
        report(bob, ids[2]).status_code,
    ]

    assert answers == [400, 201, 200, 400, 201, 429]
    assert Report.objects.count() == 2
    # Other calls are not limited by it.
    assert send(bob, conversation, "still here").status_code == 201


def test_closed_reports_forget_the_words_after_the_retention(settings, moderator, alice, bob):
    settings.REPORT_RETENTION_DAYS = 30
    conversation = direct(alice, bob)
    old = send(alice, conversation, "old insult").json()["message"]
    recent = send(alice, conversation, "recent insult").json()["message"]
    pending = send(alice, conversation, "open insult").json()["message"]
    for message in (old, recent, pending):
        report(bob, message["id"], note="again")
    ids = Report.objects.exclude(message_id=pending["id"]).values_list("pk", flat=True)
    moderator.post("/admin/messaging/report/", {"action": "dismiss", "_selected_action": ids})
    Report.objects.filter(message_id=old["id"]).update(
        resolved_at=timezone.now() - timedelta(days=31)
    )

    assert reports_forget_closed() == 1
    assert reports_forget_closed() == 0
    texts = dict(Report.objects.values_list("message_id", "text"))
    assert texts == {old["id"]: "", recent["id"]: "recent insult", pending["id"]: "open insult"}
    forgotten = Report.objects.get(message_id=old["id"])
    assert (forgotten.note, forgotten.status) == ("", Report.Status.DISMISSED)


def test_a_moderator_dismisses_a_report_and_the_message_stays(moderator, alice, bob):
    message = send(alice, direct(alice, bob), "you are wrong").json()["message"]
    report(bob, message["id"])
    stored = Report.objects.get()

    response = moderator.post(
        "/admin/messaging/report/",
        {"action": "dismiss", "_selected_action": [stored.pk]},
        follow=True,
    )
    again = moderator.post(
        "/admin/messaging/report/",
        {"action": "dismiss", "_selected_action": [stored.pk]},
        follow=True,
    )

    assert b"Dismissed 1 report(s)." in response.content
    assert b"Dismissed 0 report(s)." in again.content
    stored.refresh_from_db()
    assert stored.status == Report.Status.DISMISSED
    assert Message.objects.get().deleted_at is None
    assert LogEntry.objects.filter(change_message="Dismissed").count() == 1


def test_reports_are_for_moderators_only_and_cannot_be_edited(moderator, alice, bob):
    message = send(alice, direct(alice, bob), "hm").json()["message"]
    report(bob, message["id"])
    stored = Report.objects.get()
    member = Client()
    member.force_login(bob.user)

    as_member = member.get("/admin/messaging/report/")
    edit = moderator.post(
        f"/admin/messaging/report/{stored.pk}/change/", {"status": "dismissed", "text": "x"}
    )
    delete = moderator.post(f"/admin/messaging/report/{stored.pk}/delete/", {"post": "yes"})

    assert as_member.status_code == 302
    assert (edit.status_code, delete.status_code) == (403, 403)
    stored.refresh_from_db()
    assert (stored.status, stored.text) == (Report.Status.OPEN, "hm")
