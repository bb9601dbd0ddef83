"""Conversations, messages, read markers and sync over REST.

Cast: alice owns things, bob is a member, charlie should have no access."""

import json
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.models import Conversation, InboxEvent, Membership, Message
from tests.messaging_helpers import api, direct, group, new_id, send

pytestmark = pytest.mark.django_db


# --- conversations ---------------------------------------------------------------


def test_a_direct_conversation_is_unique_per_pair(alice, bob):
    first = api(alice).post("/api/v1/conversations/", {"kind": "direct", "user_id": bob.id})
    again = api(alice).post("/api/v1/conversations/", {"kind": "direct", "user_id": bob.id})
    reverse = api(bob).post("/api/v1/conversations/", {"kind": "direct", "user_id": alice.id})

    assert first.status_code == 201
    assert again.status_code == 200
    assert reverse.status_code == 200
    assert first.json()["id"] == again.json()["id"] == reverse.json()["id"]
    assert {m["user_id"] for m in first.json()["members"]} == {alice.id, bob.id}
    assert Conversation.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"kind": "direct"}, "invalid"),
        ({"kind": "direct", "user_id": 999999}, "unknown_user"),
        ({"kind": "group", "member_ids": []}, "invalid"),  # no title at all
        ({"kind": "channel", "title": "x"}, "invalid"),
        ({"kind": "group", "title": " \t ", "member_ids": []}, "invalid_title"),
        ({"kind": "group", "title": "\u202e\u3164", "member_ids": []}, "invalid_title"),
    ],
)
def test_creating_a_conversation_validates_its_input(alice, body, code):
    response = api(alice).post("/api/v1/conversations/", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == code


def test_a_direct_conversation_with_oneself_is_refused(alice):
    response = api(alice).post("/api/v1/conversations/", {"kind": "direct", "user_id": alice.id})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_user"


def test_a_deactivated_user_cannot_be_messaged(alice, bob):
    bob.user.is_active = False
    bob.user.save()

    response = api(alice).post("/api/v1/conversations/", {"kind": "direct", "user_id": bob.id})

    assert response.status_code == 400
    assert response.json()["code"] == "unknown_user"


def test_a_group_has_an_owner_and_its_members(alice, bob, charlie):
    conversation = group(alice, bob, title="  Book club ")

    body = api(bob).get(f"/api/v1/conversations/{conversation}/").json()
    assert body["kind"] == "group"
    assert body["title"] == "Book club"
    assert [(m["user_id"], m["role"]) for m in body["members"]] == [
        (alice.id, "owner"),
        (bob.id, "member"),
    ]


def test_a_group_holds_at_most_100_members_with_its_owner(alice, make_member):
    others = [make_member(f"user{i}") for i in range(100)]

    too_many = api(alice).post(
        "/api/v1/conversations/",
        {"kind": "group", "title": "Big", "member_ids": [m.id for m in others]},
        format="json",
    )
    full = api(alice).post(
        "/api/v1/conversations/",
        {"kind": "group", "title": "Big", "member_ids": [m.id for m in others[:99]]},
        format="json",
    )

    assert too_many.status_code == 409
    assert too_many.json()["code"] == "group_full"
    assert full.status_code == 201
    assert len(full.json()["members"]) == 100
    one_more = api(alice).post(
        f"/api/v1/conversations/{full.json()['id']}/members/",
        {"user_ids": [others[99].id]},
        format="json",
    )
    assert one_more.status_code == 409
    assert one_more.json()["code"] == "group_full"


@pytest.mark.django_db(transaction=True)
def test_concurrent_adds_cannot_overfill_a_group(alice, make_member, settings):
    settings.CHAT_MAX_GROUP_MEMBERS = 5
    members = [make_member(f"racer{i}") for i in range(8)]
    conversation = group(alice, *members[:2])
    results = []

    def add(member):
        response = api(alice).post(
            f"/api/v1/conversations/{conversation}/members/",
            {"user_ids": [member.id]},
            format="json",
        )
        results.append(response.status_code)
        connection.close()

    threads = [threading.Thread(target=add, args=(m,)) for m in members[2:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Membership.objects.filter(conversation_id=conversation).count() == 5
    assert sorted(results) == [200, 200, 409, 409, 409, 409]


def test_owner_and_admins_manage_members_and_members_cannot(alice, bob, charlie, make_member):
    dave = make_member("dave")
    conversation = group(alice, bob)

    by_member = api(bob).post(
        f"/api/v1/conversations/{conversation}/members/", {"user_ids": [dave.id]}, format="json"
    )
    by_outsider = api(charlie).post(
        f"/api/v1/conversations/{conversation}/members/", {"user_ids": [dave.id]}, format="json"
    )
    promote = api(alice).patch(
        f"/api/v1/conversations/{conversation}/members/{bob.id}/", {"role": "admin"}
    )
    by_admin = api(bob).post(
        f"/api/v1/conversations/{conversation}/members/", {"user_ids": [dave.id]}, format="json"
    )

    assert by_member.status_code == 403
    assert by_member.json()["code"] == "forbidden"
    assert by_outsider.status_code == 404
    assert promote.status_code == 200
    assert by_admin.status_code == 200
    assert {m["user_id"] for m in by_admin.json()["members"]} == {alice.id, bob.id, dave.id}

    removed = api(bob).delete(f"/api/v1/conversations/{conversation}/members/{dave.id}/")
    assert removed.status_code == 204
    assert api(dave).get(f"/api/v1/conversations/{conversation}/").status_code == 404


def test_nobody_removes_the_owner_and_an_owner_who_leaves_hands_over(alice, bob, make_member):
    carol = make_member("carol")
    conversation = group(alice, bob, carol)
    api(alice).patch(f"/api/v1/conversations/{conversation}/members/{carol.id}/", {"role": "admin"})

    kick_owner = api(carol).delete(f"/api/v1/conversations/{conversation}/members/{alice.id}/")
    leave = api(alice).delete(f"/api/v1/conversations/{conversation}/members/{alice.id}/")

    assert kick_owner.status_code == 403
    assert leave.status_code == 204
    roles = dict(
        Membership.objects.filter(conversation_id=conversation).values_list("user", "role")
    )
    assert roles == {bob.id: "member", carol.id: "owner"}


def test_someone_added_to_a_group_has_nothing_unread_from_before(alice, bob, make_member):
    carol = make_member("carol")
    conversation = group(alice, bob)
    for n in range(3):
        send(bob, conversation, f"before carol {n}")
    url = f"/api/v1/conversations/{conversation}/members/"
    api(alice).post(url, {"user_ids": [carol.id]}, format="json")
    send(bob, conversation, "welcome, carol")

    (listed,) = api(carol).get("/api/v1/conversations/").json()
    assert (listed["last_read_seq"], listed["unread_count"]) == (3, 1)
    # The history before she joined is still hers to read.
    history = api(carol).get(f"/api/v1/conversations/{conversation}/messages/").json()
    assert len(history["messages"]) == 4


def test_a_deactivated_owner_hands_the_group_to_someone_who_can_manage_it(
    alice, bob, make_member, django_capture_on_commit_callbacks
):
    from accounts.services import user_deactivate

    carol, dave = make_member("carol"), make_member("dave")
    conversation = group(alice, bob, carol, dave)
    second = group(alice, dave)  # another of hers: each group is handed over
    members_url = f"/api/v1/conversations/{conversation}/members/"
    api(alice).patch(f"{members_url}{carol.id}/", {"role": "admin"})
    lonely = group(alice, bob)  # nobody active but the owner: she stays owner
    user_deactivate(user=bob.user)  # an inactive member does not inherit

    # After the deactivation commits.
    with django_capture_on_commit_callbacks(execute=True):
        user_deactivate(user=alice.user)

    roles = dict(
        Membership.objects.filter(conversation_id=conversation).values_list("user", "role")
    )
    assert roles == {alice.id: "member", bob.id: "member", carol.id: "owner", dave.id: "member"}
    assert Membership.objects.get(conversation_id=second, user_id=dave.id).role == "owner"
    assert Membership.objects.get(conversation_id=lonely, user_id=alice.id).role == "owner"
    renamed = api(carol).patch(f"/api/v1/conversations/{conversation}/", {"title": "Ours now"})
    assert renamed.status_code == 200
    sync = api(dave).get("/api/v1/sync/", {"cursor": 0}).json()["events"]
    handed = [e for e in sync if e["kind"] == "conversation.updated"]
    owners = [
        [m["user_id"] for m in e["conversation"]["members"] if m["role"] == "owner"] for e in handed
    ]
    assert sorted(owners[-2:]) == [[carol.id], [dave.id]]


def test_someone_who_left_gets_no_text_written_after(alice, bob, charlie):
    """A removed member's device syncing from an old cursor replays the
    group's events: not the text of an edit made after they left."""
    conversation = group(alice, bob, charlie)
    message = send(alice, conversation, "before you left").json()["message"]
    api(alice).delete(f"/api/v1/conversations/{conversation}/members/{charlie.id}/")
    api(alice).patch(f"/api/v1/messages/{message['id']}/", {"text": "after you left"})

    events = api(charlie).get("/api/v1/sync/", {"cursor": 0}).json()["events"]
    (new,) = [e for e in events if e["kind"] == "message.new"]
    assert new["message"]["id"] == message["id"]
    assert new["message"]["text"] == ""
    assert "after you left" not in json.dumps(events)
    assert [e["kind"] for e in events][-1] == "member.removed"
    # Those still in it see the edit.
    bobs = api(bob).get("/api/v1/sync/", {"cursor": 0}).json()["events"]
    assert [e["message"]["text"] for e in bobs if e["kind"] == "message.new"] == ["after you left"]


def test_anyone_can_leave_a_group(alice, bob):
    conversation = group(alice, bob)

    response = api(bob).delete(f"/api/v1/conversations/{conversation}/members/{bob.id}/")

    assert response.status_code == 204
    assert api(bob).get(f"/api/v1/conversations/{conversation}/messages/").status_code == 404


def test_only_managers_rename_a_group(alice, bob, charlie):
    conversation = group(alice, bob)

    by_member = api(bob).patch(f"/api/v1/conversations/{conversation}/", {"title": "Mine"})
    by_outsider = api(charlie).patch(f"/api/v1/conversations/{conversation}/", {"title": "Mine"})
    by_owner = api(alice).patch(f"/api/v1/conversations/{conversation}/", {"title": "Renamed"})

    assert by_member.status_code == 403
    assert by_outsider.status_code == 404
    assert by_owner.status_code == 200
    assert by_owner.json()["title"] == "Renamed"
    blank = api(alice).patch(f"/api/v1/conversations/{conversation}/", {"title": "   "})
    assert (blank.status_code, blank.json()["code"]) == (400, "invalid_title")
    turned = api(alice).patch(f"/api/v1/conversations/{conversation}/", {"title": "\u202eSpoof"})
    assert turned.json()["title"] == "Spoof"  # no direction controls in a title
    api(alice).patch(f"/api/v1/conversations/{conversation}/", {"title": "Renamed"})
    assert Conversation.objects.get(pk=conversation).title == "Renamed"


def test_direct_conversations_have_no_members_to_manage(alice, bob, charlie):
    conversation = direct(alice, bob)

    response = api(alice).post(
        f"/api/v1/conversations/{conversation}/members/", {"user_ids": [charlie.id]}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "not_a_group"


# --- the conversation list ---------------------------------------------------------


def test_the_conversation_list_is_sorted_by_activity_with_last_message_and_unread(
    alice, bob, make_member
):
    carol = make_member("carol")
    with_bob = direct(alice, bob)
    with_carol = direct(alice, carol)
    team = group(alice, bob, carol)
    send(bob, with_bob, "one")
    send(bob, with_bob, "two")
    send(carol, with_carol, "hey")
    send(alice, team, "team news")

    body = api(alice).get("/api/v1/conversations/").json()

    assert [c["id"] for c in body] == [team, with_carol, with_bob]
    assert [c["last_message"]["text"] for c in body] == ["team news", "hey", "two"]
    assert [c["unread_count"] for c in body] == [0, 1, 2]


def test_the_conversation_list_costs_the_same_queries_for_many_conversations(
    alice, make_member, django_assert_max_num_queries
):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = api(alice).get("/api/v1/conversations/")
        assert response.status_code == 200
        return len(queries)

    friend = make_member("friend0")
    send(friend, direct(alice, friend), "hi")
    few = count_queries()
    for i in range(1, 12):
        friend = make_member(f"friend{i}")
        send(friend, direct(alice, friend), "hi")
        group(alice, friend, title=f"g{i}")
    many = count_queries()

    assert len(api(alice).get("/api/v1/conversations/").json()) == 23
    assert many == few


def test_the_conversation_list_shows_only_ones_own(alice, bob, charlie):
    direct(alice, bob)

    assert api(charlie).get("/api/v1/conversations/").json() == []


# --- messages and history ----------------------------------------------------------


def test_sending_stores_the_message_with_the_next_sequence(alice, bob):
    conversation = direct(alice, bob)

    first = send(alice, conversation, "  hello  ", client_msg_id="a-1")
    second = send(bob, conversation, "hi!")

    assert first.status_code == 201
    message = first.json()["message"]
    assert message["text"] == "hello"
    assert message["seq"] == 1
    assert message["sender_id"] == alice.id
    assert message["client_msg_id"] == "a-1"
    assert message["deleted"] is False
    assert second.json()["message"]["seq"] == 2


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_is_down_does_not_fail_a_stored_send(alice, bob, monkeypatch, caplog):
    """The push is queued after the commit: when Celery's broker refuses it,
    the send is still answered as stored (an error would make the client
    resend and get a duplicate), and the failure is logged."""
    from notifications.tasks import push_new_messages

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(push_new_messages, "delay", broker_down)
    conversation = direct(alice, bob)

    # Committed for real (a transactional test): the push runs after it.
    response = send(alice, conversation, "still stored", client_msg_id="b-1")

    assert response.status_code == 201
    assert Message.objects.filter(client_msg_id="b-1", text="still stored").count() == 1
    assert "broker down" in caplog.text


def test_a_resend_with_the_same_client_id_returns_the_stored_message(alice, bob):
    conversation = direct(alice, bob)

    first = send(alice, conversation, "once", client_msg_id="same")
    again = send(alice, conversation, "once (retry)", client_msg_id="same")

    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["message"] == first.json()["message"]
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty_text"),
        ("   \n\t ", "empty_text"),
        ("x" * 100_001, "text_too_long"),
        ("nul\x00byte", "invalid"),  # DRF refuses NUL before the service sees it
    ],
)
def test_bad_message_text_is_refused(alice, bob, text, code):
    conversation = direct(alice, bob)

    response = send(alice, conversation, text)

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert not Message.objects.exists()


def test_a_message_of_exactly_the_limit_is_accepted(alice, bob):
    conversation = direct(alice, bob)

    response = send(alice, conversation, "é" * 100_000)

    assert response.status_code == 201
    assert len(response.json()["message"]["text"]) == 100_000


def test_a_bad_client_msg_id_is_refused(alice, bob):
    conversation = direct(alice, bob)

    response = send(alice, conversation, "hi", client_msg_id="has spaces")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_client_msg_id"
    assert not Message.objects.filter(conversation_id=conversation).exists()


def test_history_pages_newest_first_by_sequence_with_fixed_queries(alice, bob):
    conversation = direct(alice, bob)
    for i in range(1, 121):
        send(alice if i % 2 else bob, conversation, f"m{i}")
    client = api(bob)
    url = f"/api/v1/conversations/{conversation}/messages/"

    with CaptureQueriesContext(connection) as queries:
        newest = client.get(url).json()
    older = client.get(url, {"before": 71, "limit": 50}).json()
    oldest = client.get(url, {"before": 21, "limit": 50}).json()
    after = client.get(url, {"after": 115}).json()

    assert [m["seq"] for m in newest["messages"]] == list(range(71, 121))
    assert newest["has_more"] is True
    assert [m["seq"] for m in older["messages"]] == list(range(21, 71))
    assert [m["seq"] for m in oldest["messages"]] == list(range(1, 21))
    assert oldest["has_more"] is False
    assert [m["text"] for m in after["messages"]] == ["m116", "m117", "m118", "m119", "m120"]
    with CaptureQueriesContext(connection) as small:
        client.get(url, {"limit": 5})
    assert len(queries) == len(small)


def test_history_refuses_contradictory_ranges(alice, bob):
    conversation = direct(alice, bob)

    response = api(alice).get(
        f"/api/v1/conversations/{conversation}/messages/", {"before": 5, "after": 1}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_range"


def test_editing_and_deleting_own_messages_shows_in_history(alice, bob):
    conversation = direct(alice, bob)
    message = send(alice, conversation, "teh typo").json()["message"]

    edited = api(alice).patch(f"/api/v1/messages/{message['id']}/", {"text": "the typo"})
    deleted = api(alice).delete(f"/api/v1/messages/{message['id']}/")
    history = api(bob).get(f"/api/v1/conversations/{conversation}/messages/").json()

    assert edited.status_code == 200
    assert edited.json()["text"] == "the typo"
    assert edited.json()["edited_at"] is not None
    assert deleted.status_code == 200
    assert history["messages"] == [deleted.json()]
    assert history["messages"][0]["deleted"] is True
    assert history["messages"][0]["text"] == ""
    assert history["messages"][0]["seq"] == 1


def _stored_anywhere(words: str) -> bool:
    """Whether any inbox event in storage holds the words."""
    return any(words in json.dumps(e.payload) for e in InboxEvent.objects.all())


def test_sync_from_an_old_cursor_gives_the_message_as_it_is_now(alice, bob):
    """A device that was away replays the message's events: it must not be
    handed the words its sender took back by editing, nor those of a message
    since deleted; and storage must not keep them."""
    conversation = direct(alice, bob)
    kept = send(alice, conversation, "teh typo").json()["message"]
    gone = send(alice, conversation, "sent to the wrong person").json()["message"]
    api(alice).patch(f"/api/v1/messages/{kept['id']}/", {"text": "the typo"})
    api(alice).patch(f"/api/v1/messages/{gone['id']}/", {"text": "wrong again"})
    api(alice).delete(f"/api/v1/messages/{gone['id']}/")

    for member in (alice, bob):
        events = api(member).get("/api/v1/sync/", {"cursor": 0}).json()["events"]
        messages = [e for e in events if e["kind"].startswith("message.")]
        assert [(e["kind"], e["message"]["id"]) for e in messages] == [
            ("message.new", kept["id"]),
            ("message.new", gone["id"]),
            ("message.edited", kept["id"]),
            ("message.edited", gone["id"]),
            ("message.deleted", gone["id"]),
        ]
        for event in messages:
            now = kept if event["message"]["id"] == kept["id"] else gone
            assert event["message"]["text"] == ("the typo" if now is kept else "")
            assert event["message"]["deleted"] is (now is gone)
        assert "teh typo" not in json.dumps(events)
        assert "wrong" not in json.dumps(events)
    assert not _stored_anywhere("teh typo")
    assert not _stored_anywhere("wrong")


def test_nobody_edits_or_deletes_someone_elses_message(alice, bob, charlie):
    conversation = direct(alice, bob)
    message = send(alice, conversation, "mine").json()["message"]
    url = f"/api/v1/messages/{message['id']}/"

    assert api(bob).patch(url, {"text": "yours"}).status_code == 403
    assert api(bob).delete(url).status_code == 403
    assert api(charlie).patch(url, {"text": "x"}).status_code == 404
    assert api(charlie).delete(url).status_code == 404
    assert api(alice).patch("/api/v1/messages/999999/", {"text": "x"}).status_code == 404
    assert Message.objects.get().text == "mine"


def test_a_deleted_message_cannot_be_edited(alice, bob):
    conversation = direct(alice, bob)
    message = send(alice, conversation, "gone").json()["message"]
    api(alice).delete(f"/api/v1/messages/{message['id']}/")

    response = api(alice).patch(f"/api/v1/messages/{message['id']}/", {"text": "back"})

    assert response.status_code == 400
    assert response.json()["code"] == "message_deleted"


# --- read markers -------------------------------------------------------------------


def test_reading_clears_unread_and_never_goes_backwards(alice, bob):
    conversation = direct(alice, bob)
    for text in ("a", "b", "c"):
        send(alice, conversation, text)
    read_url = f"/api/v1/conversations/{conversation}/read/"

    assert api(bob).get(f"/api/v1/conversations/{conversation}/").json()["unread_count"] == 3
    assert api(bob).post(read_url, {"seq": 2}).json()["last_read_seq"] == 2
    assert api(bob).post(read_url, {"seq": 1}).json()["last_read_seq"] == 2
    assert api(bob).post(read_url, {"seq": 99}).json()["last_read_seq"] == 3
    assert api(bob).get(f"/api/v1/conversations/{conversation}/").json()["unread_count"] == 0


# --- sync ------------------------------------------------------------------------


def test_sync_returns_inbox_events_after_the_cursor_in_pages(alice, bob):
    conversation = direct(alice, bob)
    for i in range(5):
        send(alice, conversation, f"m{i}")

    first = api(bob).get("/api/v1/sync/", {"cursor": 0, "limit": 4}).json()
    rest = api(bob).get("/api/v1/sync/", {"cursor": first["cursor"], "limit": 4}).json()

    assert [e["kind"] for e in first["events"]] == ["member.added"] + ["message.new"] * 3
    assert [e["cursor"] for e in first["events"]] == [1, 2, 3, 4]
    assert first["has_more"] is True
    assert [e["message"]["text"] for e in rest["events"]] == ["m3", "m4"]
    assert rest == {**rest, "cursor": 6, "has_more": False, "reset": False}


def test_sync_resets_a_cursor_from_the_future(alice):
    body = api(alice).get("/api/v1/sync/", {"cursor": 50}).json()

    assert body == {"events": [], "cursor": 0, "has_more": False, "reset": True}


# --- authorisation ---------------------------------------------------------------


def test_an_outsider_can_neither_read_send_mark_read_nor_see_members(alice, bob, charlie):
    conversation = direct(alice, bob)
    send(alice, conversation, "secret")
    client = api(charlie)
    base = f"/api/v1/conversations/{conversation}"

    responses = [
        client.get(f"{base}/"),
        client.get(f"{base}/messages/"),
        send(charlie, conversation, "let me in"),
        client.post(f"{base}/read/", {"seq": 1}),
        client.post(f"{base}/members/", {"user_ids": [charlie.id]}, format="json"),
        client.delete(f"{base}/members/{alice.id}/"),
    ]

    assert [r.status_code for r in responses] == [404] * 6
    assert all("secret" not in r.content.decode() for r in responses)
    assert all(r.json()["code"] == "conversation_not_found" for r in responses)
    assert Message.objects.count() == 1


def test_a_missing_conversation_looks_the_same_as_a_foreign_one(alice):
    response = api(alice).get("/api/v1/conversations/424242/messages/")

    assert response.status_code == 404
    assert response.json()["code"] == "conversation_not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/conversations/"),
        ("post", "/api/v1/conversations/"),
        ("get", "/api/v1/conversations/1/messages/"),
        ("post", "/api/v1/conversations/1/messages/"),
        ("patch", "/api/v1/messages/1/"),
        ("get", "/api/v1/sync/?cursor=0"),
        ("get", "/api/v1/chat-server/"),
    ],
)
def test_anonymous_requests_are_refused(method, path):
    response = getattr(api(), method)(path)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_chat_server_discovery_answers_a_socket_url(alice):
    body = api(alice).get("/api/v1/chat-server/", HTTP_HOST="127.0.0.1:8123").json()

    assert body["url"] == "ws://127.0.0.1:8123/ws/chat/"
    assert body["heartbeat_interval"] > 0


def test_new_conversations_ids_are_distinct_from_messages(alice, bob):
    # The client_msg_id space is per sender and conversation: the same id in
    # two conversations makes two messages.
    one, two = direct(alice, bob), group(alice, bob)

    send(alice, one, "a", client_msg_id="x")
    send(alice, two, "b", client_msg_id="x")

    assert Message.objects.count() == 2
    assert new_id() != new_id()


def test_ids_beyond_the_database_range_are_bad_input_not_server_errors(alice, bob):
    conversation = direct(alice, bob)
    huge = 10**30
    client = api(alice)

    assert client.get(f"/api/v1/conversations/{huge}/messages/").status_code == 404
    assert (
        client.get(f"/api/v1/conversations/{conversation}/messages/?before={huge}").status_code
        == 400
    )
    assert client.get(f"/api/v1/sync/?cursor={huge}").status_code == 400
    assert (
        client.post(f"/api/v1/conversations/{conversation}/read/", {"seq": huge}).status_code == 400
    )
    assert (
        client.post(
            "/api/v1/conversations/", {"kind": "direct", "user_id": huge}, format="json"
        ).status_code
        == 400
    )
    assert client.get(f"/api/v1/presence/?user_ids={huge}").status_code == 400
