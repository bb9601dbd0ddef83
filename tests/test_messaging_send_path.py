"""The fast send path: batched storage in PostgreSQL, the bounded send queue,
and our channel layer's promise to say when it fell short (`layer.gap`).

Cast: alice and bob talk, charlie should have no access."""

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import msgpack
import psycopg
import pytest
import redis
import redis.asyncio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chatproject.channel_layer import GAP, ChatChannelLayer
from chatproject.errors import NotFound
from messaging import send_store, wire
from messaging.consumers import SENDS_IN_FLIGHT_MAX
from messaging.inbox import inbox_read
from messaging.models import InboxEvent, Membership, Message
from messaging.send_queue import Overloaded, SendQueue, Unknown, _store_orm
from messaging.send_store import Send
from messaging.services import _message_send_sql, message_send_orm
from tests.messaging_helpers import api, connect, direct, group, send, send_frame
from tests.support.ws import open_socket

pytestmark = pytest.mark.django_db(transaction=True)

IMPLEMENTATIONS = {"sql": _message_send_sql, "orm": message_send_orm}


# --- the two implementations of one set of rules ----------------------------


@pytest.mark.parametrize("store", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
def test_both_send_implementations_store_alike(store, alice, bob, charlie, make_member):
    """The SQL function is what runs on PostgreSQL; the ORM version runs on
    SQLite (`make run`). Both must keep the same rules."""
    carol = make_member("carol")
    conversation = group(alice, bob, carol)
    heads = {m.id: _head(m.id) for m in (alice, bob, carol)}

    first = store(Send(conversation, bob.id, "m1", "hello"))
    second = store(Send(conversation, alice.id, "m2", "hi bob"))

    assert (first.created, second.created) == (True, True)
    assert (first.message.seq, second.message.seq) == (1, 2)
    stored = Message.objects.get(pk=first.message.pk)
    assert (stored.text, stored.sender_id, stored.client_msg_id) == ("hello", bob.id, "m1")
    # Every member's inbox has both, in order, the message by its id (a read
    # puts it in as the wire shows it).
    for member in (alice, bob, carol):
        events = list(
            InboxEvent.objects.filter(user_id=member.id, seq__gt=heads[member.id]).order_by("seq")
        )
        assert [e.kind for e in events] == ["message.new", "message.new"]
        assert [e.seq for e in events] == [heads[member.id] + 1, heads[member.id] + 2]
        assert events[0].payload == {"message_id": stored.pk}
        (read,) = inbox_read(user_id=member.id, after=heads[member.id], upto=events[0].seq)
        assert read["message"] == wire.message_dict(stored)
    # Sending reads everything before: bob's marker is at his message, alice's at hers.
    markers = dict(
        Membership.objects.filter(conversation_id=conversation).values_list(
            "user_id", "last_read_seq"
        )
    )
    assert (markers[bob.id], markers[alice.id], markers[carol.id]) == (1, 2, 0)

    # A resend is the stored message, and nobody gets it twice.
    again = store(Send(conversation, bob.id, "m1", "hello (resent)"))
    assert again.created is False
    assert again.message.pk == first.message.pk
    assert InboxEvent.objects.filter(user_id=carol.id, seq__gt=heads[carol.id]).count() == 2

    # Outsiders and deactivated members cannot send.
    with pytest.raises(NotFound):
        store(Send(conversation, charlie.id, "c1", "let me in"))
    carol.user.is_active = False
    carol.user.save(update_fields=["is_active"])
    with pytest.raises(NotFound):
        store(Send(conversation, carol.id, "k1", "still here?"))
    with pytest.raises(NotFound):
        store(Send(10**15, alice.id, "n1", "no such conversation"))
    assert Message.objects.filter(conversation_id=conversation).count() == 2

    # A message stored before leaving is still acknowledged on resend.
    Membership.objects.filter(conversation_id=conversation, user_id=bob.id).delete()
    assert store(Send(conversation, bob.id, "m1", "hello")).message.pk == first.message.pk


@contextmanager
def conversation_locked(conversation: int) -> Iterator[None]:
    """Hold the conversation's row lock, as a long transaction would, until
    the block ends: released even if an assertion in it fails (a lock left
    held would hang the test database's teardown)."""
    with psycopg.connect(_pg_url()) as blocker:
        blocker.execute(
            "SELECT 1 FROM messaging_conversation WHERE id = %s FOR UPDATE", [conversation]
        )
        yield


def _pg_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _head(user_id: int) -> int:
    last = InboxEvent.objects.filter(user_id=user_id).order_by("-seq").first()
    return last.seq if last is not None else 0


# --- the bounded send queue ----------------------------------------------------


def test_a_full_send_queue_refuses_with_overloaded_and_stores_nothing(daphne_factory, alice, bob):
    server = daphne_factory(CHAT_SEND_QUEUE_MAX="0")
    conversation = direct(alice, bob)
    with connect(server, alice)[0] as phone:
        phone.send(send_frame(conversation, "hello?", "busy-1"))
        error = phone.expect("error")
        # The socket survives and can do other things.
        phone.send({"type": "read", "conversation_id": conversation, "seq": 0})
        phone.send({"type": "heartbeat"})
        time.sleep(0.3)
        phone.send({"type": "hello", "cursor": None})
        phone.expect("ready")

    assert error["code"] == "overloaded"
    assert error["client_msg_id"] == "busy-1"
    assert not Message.objects.filter(conversation_id=conversation).exists()


def test_under_overload_every_send_is_acked_or_refused_and_acked_ones_arrive_once(
    daphne_factory, alice, bob
):
    """Many sockets send at once into a queue of two: each send is either
    stored and delivered exactly once, or refused in words; a refused one
    goes through when sent again."""
    server = daphne_factory(
        CHAT_SEND_QUEUE_MAX="2", CHAT_SOCKET_RATE="1000", CHAT_SOCKET_BURST="1000"
    )
    conversation = direct(alice, bob)
    receiver = connect(server, bob)[0]
    senders = [connect(server, alice)[0] for _ in range(12)]
    per_socket = 10
    answers: dict[str, str] = {}
    lock = threading.Lock()

    def blast(sock, index: int) -> None:
        ids = [f"s{index}-{n}" for n in range(per_socket)]
        for client_msg_id in ids:
            sock.send(send_frame(conversation, client_msg_id, client_msg_id))
        for _ in ids:
            frame = sock.recv(timeout=15)
            while frame["type"] not in ("ack", "error"):
                frame = sock.recv(timeout=15)
            with lock:
                answers[frame["client_msg_id"]] = frame.get("code", frame["type"])

    # Hold the conversation's row lock, as a long transaction would: the first
    # batch waits on it, the queue fills, and the rest must be refused.
    with conversation_locked(conversation):
        threads = [threading.Thread(target=blast, args=(s, i)) for i, s in enumerate(senders)]
        for thread in threads:
            thread.start()
        time.sleep(2)
    for thread in threads:
        thread.join(timeout=60)

    acked = {k for k, v in answers.items() if v == "ack"}
    refused = {k for k, v in answers.items() if v == "overloaded"}
    assert len(answers) == 12 * per_socket
    assert acked and refused, answers
    assert acked | refused == set(answers), answers
    assert (
        set(
            Message.objects.filter(conversation_id=conversation).values_list(
                "client_msg_id", flat=True
            )
        )
        == acked
    )

    # Refused ones, sent again one at a time, go through.
    for client_msg_id in sorted(refused):
        senders[0].send(send_frame(conversation, client_msg_id, client_msg_id))
        senders[0].expect("ack", client_msg_id=client_msg_id)
    texts = []
    while len(texts) < len(answers):
        texts.append(receiver.expect("event", kind="message.new", timeout=10)["message"]["text"])
    assert sorted(texts) == sorted(answers)  # each exactly once
    for sock in [receiver, *senders]:
        sock.close()


def _next_of(sock, types: set[str]) -> dict:
    """The next frame of one of these types (presence and typing skipped)."""
    while True:
        frame = sock.recv()
        if frame["type"] in types:
            return frame


def test_an_earlier_event_goes_out_before_the_ack_that_stands_for_the_next(live_daphne, alice, bob):
    conversation = direct(alice, bob)
    alice_phone, ready = connect(live_daphne, alice)
    bob_phone = connect(live_daphne, bob)[0]
    cursor = ready["cursor"]
    # Bob's message is stored first but waits on the row lock; Alice's send
    # queues behind it. Bob's event reaches her phone's mailbox before her
    # send's answer does, so her phone gets it first and her ack then stands
    # for the next event: each message once, in cursor order.
    with conversation_locked(conversation):
        bob_phone.send(send_frame(conversation, "first", "b1"))
        time.sleep(0.5)
        alice_phone.send(send_frame(conversation, "second", "a1"))
        time.sleep(0.3)

    first, ack = [_next_of(alice_phone, {"event", "ack"}) for _ in range(2)]
    assert (first["type"], first["cursor"], first["message"]["text"]) == (
        "event",
        cursor + 1,
        "first",
    )
    assert (ack["type"], ack["client_msg_id"], ack["cursor"]) == ("ack", "a1", cursor + 2)
    assert [f for f in alice_phone.frames_for(0.5) if f["type"] == "event"] == []
    alice_phone.close()
    bob_phone.close()


def test_a_socket_keeps_reading_while_its_sends_wait_and_acks_come_in_order(
    live_daphne, alice, bob
):
    conversation = direct(alice, bob)
    alice_phone, ready = connect(live_daphne, alice)
    bob_phone = connect(live_daphne, bob)[0]
    cursor = ready["cursor"]
    with conversation_locked(conversation):
        for n in range(5):
            alice_phone.send(send_frame(conversation, f"m{n}", f"a{n}"))
        # Her sends wait on the lock, yet her socket still takes other frames:
        # Bob's typing reaches her, and her bad frame is answered at once.
        bob_phone.send({"type": "typing", "conversation_id": conversation})
        assert alice_phone.expect("typing")["user_id"] == bob.user.pk
        alice_phone.send({"type": "send", "conversation_id": conversation, "client_msg_id": "bad"})
        error = alice_phone.expect("error")
        assert (error["code"], error["client_msg_id"]) == ("invalid_text", "bad")

    acks = [alice_phone.expect("ack") for _ in range(5)]
    assert [a["client_msg_id"] for a in acks] == [f"a{n}" for n in range(5)]
    assert [a["cursor"] for a in acks] == [cursor + 1 + n for n in range(5)]
    assert [a["message"]["seq"] for a in acks] == [1, 2, 3, 4, 5]
    texts = [bob_phone.expect("event", kind="message.new")["message"]["text"] for _ in range(5)]
    assert texts == [f"m{n}" for n in range(5)]
    assert [f for f in alice_phone.frames_for(0.5) if f["type"] == "event"] == []
    alice_phone.close()
    bob_phone.close()


def test_a_conversation_waiting_on_a_lock_holds_up_no_other_and_acks_stay_in_order(
    daphne_factory, alice, bob, make_member
):
    """The send queue stores conversations in lanes, each on its own
    connection (CHAT_SEND_CONNECTIONS): while a send waits in PostgreSQL, a
    send to a conversation of another lane is stored and delivered. The
    sender's acks still come in the order she sent, and her device is told of
    each message once, in cursor order."""
    server = daphne_factory(CHAT_SEND_CONNECTIONS="2")
    carol = make_member("carol")
    stuck, other = direct(alice, bob), direct(alice, carol)
    while other % 2 == stuck % 2:  # the lane is the conversation id modulo 2
        other = group(alice, carol)
    alice_phone, ready = connect(server, alice)
    carol_phone = connect(server, carol)[0]
    cursor = ready["cursor"]
    with conversation_locked(stuck):
        alice_phone.send(send_frame(stuck, "first", "s1"))
        alice_phone.send(send_frame(other, "second", "s2"))

        assert carol_phone.expect("event", kind="message.new")["message"]["text"] == "second"
        before = alice_phone.frames_for(0.5)
        assert [f for f in before if f["type"] == "ack"] == []  # s2's waits for s1's
    frames = list(before)
    while len([f for f in frames if f["type"] == "ack"]) < 2:
        frames.append(alice_phone.recv(timeout=10))
    frames += alice_phone.frames_for(0.5)  # any event still to come

    assert [f["client_msg_id"] for f in frames if f["type"] == "ack"] == ["s1", "s2"]
    told = [
        (f["cursor"], f["message"]["text"])
        for f in frames
        if f["type"] in ("ack", "event") and f.get("cursor") is not None
    ]
    # Stored in the order they reached PostgreSQL: "second" first.
    assert told == [(cursor + 1, "second"), (cursor + 2, "first")]
    alice_phone.close()
    carol_phone.close()


def test_a_socket_with_too_many_sends_waiting_stops_reading_until_the_oldest_is_stored(
    live_daphne, alice, bob
):
    """One client must not fill the server's send queue: past
    SENDS_IN_FLIGHT_MAX waiting sends its socket handles no more frames
    (they wait), and nothing is lost when it goes on."""
    conversation = direct(alice, bob)
    alice_phone = connect(live_daphne, alice)[0]
    with conversation_locked(conversation):
        many = SENDS_IN_FLIGHT_MAX + 1
        for n in range(many):
            alice_phone.send(send_frame(conversation, f"m{n}", f"a{n}"))
        alice_phone.send({"type": "send", "conversation_id": conversation, "client_msg_id": "bad"})
        # Not handled yet, so not answered (with 5 waiting it is at once: above).
        assert alice_phone.frames_for(1.0) == []

    frames = [alice_phone.recv() for _ in range(many + 1)]
    acks = [f["client_msg_id"] for f in frames if f["type"] == "ack"]
    assert acks == [f"a{n}" for n in range(many)]
    assert [f["code"] for f in frames if f["type"] == "error"] == ["invalid_text"]
    assert Message.objects.filter(conversation_id=conversation).count() == many
    alice_phone.close()


# --- the channel layer says when it fell short -----------------------------------


async def _receive(layer: ChatChannelLayer, channel: str, timeout: float = 5.0) -> dict:
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def test_a_full_socket_queue_gets_one_gap_message_not_silence():
    layer = ChatChannelLayer(settings.REDIS_URL, prefix=f"{settings.REDIS_PREFIX}:gap", capacity=2)
    channel = await layer.new_channel()
    await layer.group_add("user.1", channel)
    await layer.group_send_many([("user.1", {"type": "n", "n": n}) for n in range(5)])

    received = [await _receive(layer, channel) for _ in range(3)]
    assert [m.get("n") for m in received[:2]] == [0, 1]
    assert received[2] is GAP  # 2, 3, 4 did not fit: said once
    # Once the gap is read, delivery goes on.
    await layer.group_send("user.1", {"type": "n", "n": 5})
    assert (await _receive(layer, channel))["n"] == 5
    await layer.close()


async def _two_servers(
    name: str, group: str
) -> tuple[ChatChannelLayer, ChatChannelLayer, str, str]:
    """Two processes' layers, each with a socket in `group`: here, there, mine, theirs."""
    prefix = f"{settings.REDIS_PREFIX}:{name}"
    here = ChatChannelLayer(settings.REDIS_URL, prefix=prefix)
    there = ChatChannelLayer(settings.REDIS_URL, prefix=prefix)
    mine, theirs = await here.new_channel(), await there.new_channel()
    await here.group_add(group, mine)
    await there.group_add(group, theirs)
    return here, there, mine, theirs


async def test_this_process_delivers_its_own_at_once_and_other_processes_once_through_redis():
    here, there, mine, theirs = await _two_servers("two", "user.3")

    await here.group_send_many([("user.3", {"type": "n", "n": n}) for n in range(3)])
    # Here, queued before the publish even returned; there, by way of Redis.
    assert here.channels[mine].queue.qsize() == 3
    for channel, layer in ((mine, here), (theirs, there)):
        assert [(await _receive(layer, channel))["n"] for _ in range(3)] == [0, 1, 2]
    # Redis brings this process its own messages too: they are not delivered twice.
    await there.group_send("user.3", {"type": "n", "n": 3})
    for channel, layer in ((mine, here), (theirs, there)):
        assert (await _receive(layer, channel))["n"] == 3
        with pytest.raises(TimeoutError):
            await _receive(layer, channel, timeout=0.3)
    await here.close()
    await there.close()


async def test_a_group_no_other_process_listens_to_is_not_published_yet_every_listener_gets_it():
    """Publishing is skipped only while no other process subscribes: a second
    server's device gets every message, whatever this process's own
    subscription went through (left and joined again, lost with Redis)."""
    prefix = f"{settings.REDIS_PREFIX}:quiet"
    here, there = (
        ChatChannelLayer(settings.REDIS_URL, prefix=prefix),
        ChatChannelLayer(settings.REDIS_URL, prefix=prefix),
    )
    # A pattern subscriber sees every publish and is not counted by NUMSUB.
    watcher = redis.asyncio.Redis.from_url(settings.REDIS_URL).pubsub()
    await watcher.psubscribe(f"{prefix}:g:*")
    await watcher.get_message(timeout=1)

    async def published() -> list[bytes]:
        seen = []
        while (item := await watcher.get_message(timeout=0.3)) is not None:
            seen.append(item["channel"])
        return seen

    mine = await here.new_channel()
    await here.group_add("user.8", mine)
    await here.group_send_many([("user.8", {"type": "n", "n": 1}), ("user.80", {"type": "n"})])
    assert (await _receive(here, mine))["n"] == 1
    assert await published() == []  # only here listens (and nobody to user.80)

    theirs = await there.new_channel()
    await there.group_add("user.8", theirs)
    await here.group_discard("user.8", mine)
    await here.group_add("user.8", mine)
    await here.group_send("user.8", {"type": "n", "n": 2})
    assert (await _receive(there, theirs))["n"] == 2
    assert (await _receive(here, mine))["n"] == 2
    assert await published() == [f"{prefix}:g:user.8".encode()]

    _kill_client(here.reader_name)
    assert await _receive(here, mine, timeout=10) is GAP  # re-subscribed
    assert await _receive(there, theirs) == {"type": "inbox.check"}  # test below
    await here.group_send("user.8", {"type": "n", "n": 3})
    assert (await _receive(there, theirs))["n"] == 3
    assert (await _receive(here, mine))["n"] == 3
    await there.group_discard("user.8", theirs)
    await asyncio.sleep(0.2)  # the UNSUBSCRIBE reaches Redis
    await here.group_send("user.8", {"type": "n", "n": 4})
    assert (await _receive(here, mine))["n"] == 4
    # The inbox.check's and n=3's, not n=4's.
    assert await published() == [f"{prefix}:g:user.8".encode()] * 2
    await watcher.aclose()
    await here.close()
    await there.close()


async def test_when_a_server_loses_its_subscriptions_other_servers_sockets_read_their_inboxes():
    """Until a server notices that Redis dropped its reader, its NUMSUB counts
    a subscription Redis no longer has, and it may skip publishing to a group
    another server listens to. Those sockets are told to read their inboxes."""
    here, there, mine, theirs = await _two_servers("hidden", "user.9")
    await here.group_send("user.9", {"type": "n", "n": 1})
    assert (await _receive(there, theirs))["n"] == 1

    _kill_client(here.reader_name)
    assert await _receive(there, theirs, timeout=10) == {"type": "inbox.check"}
    assert (await _receive(here, mine))["n"] == 1
    assert await _receive(here, mine, timeout=10) is GAP  # ours hear of it so
    await here.close()
    await there.close()


async def test_publishes_from_other_event_loops_reach_this_process_once():
    """REST views and tasks publish from threads (their own loops, or none):
    the layer's own sockets get those through Redis, once."""
    layer = ChatChannelLayer(settings.REDIS_URL, prefix=f"{settings.REDIS_PREFIX}:loops")
    embedded = ChatChannelLayer(None)
    for each in (layer, embedded):
        channel = await each.new_channel()
        await each.group_add("user.5", channel)
        await asyncio.to_thread(asyncio.run, each.group_send("user.5", {"type": "n", "n": 1}))
        await asyncio.to_thread(each.group_send_many_sync, [("user.5", {"type": "n", "n": 2})])
        assert [(await _receive(each, channel))["n"] for _ in range(2)] == [1, 2]
        with pytest.raises(TimeoutError):
            await _receive(each, channel, timeout=0.3)
    await layer.close()


async def test_an_unreadable_or_older_payload_is_a_gap_or_a_delivery_never_silence():
    prefix = f"{settings.REDIS_PREFIX}:format"
    layer = ChatChannelLayer(settings.REDIS_URL, prefix=prefix)
    channel = await layer.new_channel()
    await layer.group_add("user.6", channel)
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    # Without an origin, as the layer of the previous release published.
    await client.publish(f"{prefix}:g:user.6", msgpack.packb({"type": "n", "n": 1}))
    assert (await _receive(layer, channel))["n"] == 1
    await client.publish(f"{prefix}:g:user.6", b"someone-else" + b"\xc1not msgpack")
    assert await _receive(layer, channel) is GAP
    await client.aclose()
    await layer.close()


async def test_after_losing_redis_every_socket_hears_of_the_gap_and_delivery_resumes():
    prefix = f"{settings.REDIS_PREFIX}:lost"
    # The sender is another process: what reaches `layer` comes through Redis.
    layer, sender = (
        ChatChannelLayer(settings.REDIS_URL, prefix=prefix),
        ChatChannelLayer(settings.REDIS_URL, prefix=prefix),
    )
    channel = await layer.new_channel()
    await layer.group_add("user.7", channel)
    with pytest.raises(TimeoutError):
        # A receive that times out must not lose the socket's channel.
        await _receive(layer, channel, timeout=0.1)
    await sender.group_send("user.7", {"type": "n", "n": 1})
    assert (await _receive(layer, channel))["n"] == 1

    killed = _kill_client(layer.reader_name)
    assert killed == 1
    # The gap is announced once the subscriptions are back: whatever is sent
    # from then on arrives, and what was missed before is for the inbox.
    assert await _receive(layer, channel, timeout=10) is GAP
    await sender.group_send("user.7", {"type": "n", "n": 2})
    assert (await _receive(layer, channel))["n"] == 2
    await layer.close()
    await sender.close()


async def test_many_sockets_joining_at_once_all_get_their_messages():
    """At start-up and while the layer reconnects, hundreds of sockets join
    together (a deploy: every client reconnects): each must end up
    subscribed, on one pub/sub connection."""
    layer = ChatChannelLayer(settings.REDIS_URL, prefix=f"{settings.REDIS_PREFIX}:storm")

    async def join(n: int) -> str:
        channel = await layer.new_channel()
        await layer.group_add(f"user.{n}", channel)
        return channel

    first = await asyncio.wait_for(asyncio.gather(*(join(n) for n in range(300))), 20)
    _kill_client(layer.reader_name)
    second = await asyncio.wait_for(asyncio.gather(*(join(n) for n in range(300, 400))), 20)
    # Those joined before the loss hear of it (and would read their inboxes),
    # as may those that joined while the layer was re-subscribing.
    for channel in first:
        assert await _receive(layer, channel) is GAP
    for channel in second:
        if layer.channels[channel].gapped:
            assert await _receive(layer, channel) is GAP

    await layer.group_send_many([(f"user.{n}", {"type": "n", "n": n}) for n in range(400)])
    for n, channel in enumerate(first + second):
        assert (await _receive(layer, channel))["n"] == n
    readers = [
        c
        for c in redis.Redis.from_url(settings.REDIS_URL).client_list()
        if c.get("name") == layer.reader_name
    ]
    assert len(readers) == 1
    await layer.close()


def test_a_batch_of_many_sends_numbers_conversations_and_inboxes_in_order(
    alice, bob, charlie, make_member
):
    """One call of the batch function with several sends per conversation and
    per user, a repeat, an outsider: seqs and cursors are contiguous and in
    the batch's order; each send gets its own answer."""
    carol = make_member("carol")
    team = group(alice, bob, carol)
    pair = direct(alice, bob)
    heads = {m.id: _head(m.id) for m in (alice, bob, carol)}
    sends = [
        Send(team, alice.id, "a1", "one"),
        Send(pair, bob.id, "b1", "two"),
        Send(team, carol.id, "c1", "three"),
        Send(team, alice.id, "a1", "one again"),  # a repeat inside the batch
        Send(pair, charlie.id, "x1", "outsider"),
        Send(pair, alice.id, "a2", "four"),
    ]
    unique, where = send_store.distinct(sends)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(send_store.SQL, send_store.params(unique, timezone.now()))
        stored = send_store.answers([send_store.parse(r) for r in cursor.fetchall()], where)

    assert [s.status for s in stored] == [
        "created",
        "created",
        "created",
        "duplicate",
        "not_found",
        "created",
    ]
    assert stored[3].message_id == stored[0].message_id
    seqs = [json.loads(s.message)["seq"] if s.message else None for s in stored]
    assert [seqs[i] for i in (0, 2)] == [1, 2]  # the team's
    assert [seqs[i] for i in (1, 5)] == [1, 2]  # the pair's
    # Bob is in both: his cursors follow the batch's order, without gaps.
    bob_cursors = [dict(stored[i].events)[bob.id] for i in (0, 1, 2, 5)]
    assert bob_cursors == [heads[bob.id] + k for k in (1, 2, 3, 4)]
    assert [
        e.seq
        for e in InboxEvent.objects.filter(user_id=bob.id, seq__gt=heads[bob.id]).order_by("seq")
    ] == bob_cursors
    assert dict(stored[2].events).keys() == {alice.id, bob.id, carol.id}


def _kill_client(name: str) -> int:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        ids = [c["id"] for c in client.client_list() if c.get("name") == name]
        for client_id in ids:
            client.client_kill_filter(_id=client_id)
        return len(ids)
    finally:
        client.close()


def test_a_socket_whose_layer_connection_drops_still_gets_every_message(daphne_factory, alice, bob):
    """Redis drops the chat server's pub/sub connection while messages go out:
    the socket repairs from its inbox at once (no heartbeat, no head check)."""
    server = daphne_factory(CHAT_HEAD_CHECK="3600")
    conversation = direct(alice, bob)
    with connect(server, bob)[0] as phone:
        send(alice, conversation, "before")
        assert phone.expect("event", kind="message.new")["message"]["text"] == "before"
        names = [
            c["name"]
            for c in redis.Redis.from_url(settings.REDIS_URL).client_list()
            if c.get("name", "").startswith(f"{settings.REDIS_PREFIX}:asgi:reader:")
        ]
        for name in names:
            _kill_client(name)
        for n in range(5):
            send(alice, conversation, f"during {n}")
        texts = [
            phone.expect("event", kind="message.new", timeout=10)["message"]["text"]
            for _ in range(5)
        ]
    assert texts == [f"during {n}" for n in range(5)]


# --- the replay's frames are spliced as text ---------------------------------


def test_replayed_frames_as_text_are_the_stored_events(alice, bob):
    """The socket's replay sends frames spliced from the stored payload text;
    they must be exactly the events REST sync returns, whatever the text."""
    from messaging.inbox import inbox_append, inbox_read_text

    conversation = direct(alice, bob)
    send(alice, conversation, 'quotes " \\ and ünïcødé 🎉, {braces}: [x]')
    send(alice, conversation, "second")
    with transaction.atomic():
        inbox_append(user_ids=[bob.id], kind="read", payload={})  # an empty payload too
        # A reference to no message goes out as stored, whatever its id holds.
        for odd in (10**12, "abc", "12", 1.5, None):
            inbox_append(user_ids=[bob.id], kind="message.new", payload={"message_id": odd})

    expected = inbox_read(user_id=bob.id, after=0)
    spliced = inbox_read_text(user_id=bob.id, after=0)
    assert [cursor for cursor, _ in spliced] == [frame["cursor"] for frame in expected]
    assert [json.loads(text) for _, text in spliced] == expected
    assert inbox_read_text(user_id=bob.id, after=1, upto=2) == spliced[1:2]


def test_replayed_messages_are_as_rest_shows_them_now(alice, bob, make_member):
    """The replay's messages are made as JSON text by PostgreSQL: the same
    values, time stamps to the character, as REST sync makes in Python, after
    an edit and a deletion, at whole seconds, and without the text in a
    group the reader has left."""
    from messaging.inbox import inbox_read_text

    carol = make_member("carol")
    conversation = direct(alice, bob)
    edited = send(alice, conversation, "frist").json()["message"]
    deleted = send(alice, conversation, "oops").json()["message"]
    whole = send(alice, conversation, "on the second").json()["message"]
    fixed = api(alice).patch(f"/api/v1/messages/{edited['id']}/", {"text": "first"}, format="json")
    gone = api(alice).delete(f"/api/v1/messages/{deleted['id']}/")
    assert (fixed.status_code, gone.status_code) == (200, 200)
    second = timezone.now().replace(microsecond=0)
    Message.objects.filter(pk=whole["id"]).update(created_at=second, edited_at=second)
    team = group(alice, bob, carol)
    send(alice, team, "before carol left")
    api(carol).delete(f"/api/v1/conversations/{team}/members/{carol.id}/")

    for user in (bob, carol):
        expected = inbox_read(user_id=user.id, after=0)
        with CaptureQueriesContext(connection) as queries:
            replayed = inbox_read_text(user_id=user.id, after=0)
        assert any("jsonb_build_object" in q["sql"] for q in queries.captured_queries)
        assert [json.loads(text) for _, text in replayed] == expected
        if user is bob:
            now = {e["message"]["id"]: e["message"] for e in expected if "message" in e}
    assert now[edited["id"]]["text"] == "first" and now[edited["id"]]["edited_at"]
    assert now[deleted["id"]]["deleted"] is True
    assert "." not in now[whole["id"]]["created_at"] + now[whole["id"]]["edited_at"]
    carols = [e["message"]["text"] for e in expected if "message" in e]
    assert carols == [""]  # the group's message, after she left


def test_live_frames_spliced_from_the_stored_text_are_the_stored_events(live_daphne, alice, bob):
    """The ack and the live `message.new` are spliced around the message's JSON
    text as PostgreSQL stored it: they carry exactly the message and event a
    replay or REST sync gives, odd characters included."""
    conversation = direct(alice, bob)
    alice_phone, alice_ready = connect(live_daphne, alice)
    bob_phone, bob_ready = connect(live_daphne, bob)
    text = 'quotes " \\ and ünïcødé 🎉, {braces}: [x] </script>'
    alice_phone.send(send_frame(conversation, text, "m.1:odd_id-2"))
    ack = alice_phone.expect("ack")
    live = bob_phone.expect("event", kind="message.new")

    assert (ack["client_msg_id"], ack["duplicate"]) == ("m.1:odd_id-2", False)
    assert ack["cursor"] == alice_ready["cursor"] + 1
    assert ack["message"] == live["message"]
    assert live["message"]["text"] == text
    replayed = open_socket(live_daphne.ws_url, token=bob.token)
    replayed.send({"type": "hello", "cursor": bob_ready["cursor"]})
    assert [f for f in replayed.frames_for(1.5) if f["type"] == "event"] == [live]
    # A resend is acked as a duplicate, with the same message.
    alice_phone.send(send_frame(conversation, text, "m.1:odd_id-2"))
    again = alice_phone.expect("ack")
    assert (again["duplicate"], again["message"]) == (True, ack["message"])
    for sock in (alice_phone, bob_phone, replayed):
        sock.close()


@pytest.fixture
async def private_queue(request, monkeypatch):
    """A send queue of this test's own, delivering through a channel layer of
    its own (the process's layer stays unbound to this test's event loop),
    with pushes held back; stopped and closed after the test. Parametrize
    it indirectly to pass other SendQueue arguments."""
    layer = ChatChannelLayer(settings.REDIS_URL, prefix=f"{settings.REDIS_PREFIX}:queue")
    monkeypatch.setattr("chatproject.realtime.get_channel_layer", lambda: layer)
    params = {"max_waiting": 10, "max_batch": 10, "push_window": 3600.0}
    queue = SendQueue(**{**params, **getattr(request, "param", {})})
    yield queue, layer
    await queue.close()
    await layer.close()
    # The connection the tests' sync_to_async(direct) opened in its thread.
    await sync_to_async(connections.close_all)()


async def test_a_failing_answer_hook_does_not_stop_the_rest_of_a_committed_batch(
    alice, bob, private_queue
):
    """A socket's answer hook that raises (its socket broke) costs that socket
    its ack only: the other sends of the batch are answered and delivered."""
    queue, layer = private_queue
    conversation = await sync_to_async(direct)(alice, bob)
    bobs_phone = await layer.new_channel()
    await layer.group_add(f"user.{bob.id}", bobs_phone)
    answered: list[asyncio.Future] = []

    def broken(future: asyncio.Future) -> None:
        raise RuntimeError("this socket is gone")

    first = queue.submit(Send(conversation, alice.id, "h1", "one"), then=broken)
    second = queue.submit(Send(conversation, alice.id, "h2", "two"), then=answered.append)
    await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert [f.result().status for f in (first, second)] == ["created", "created"]
    assert answered == [second]
    delivered = [await _receive(layer, bobs_phone) for _ in range(2)]
    assert [json.loads(d["message"])["text"] for d in delivered] == ["one", "two"]


@pytest.mark.parametrize("private_queue", [{"lanes": 2, "max_waiting": 4}], indirect=True)
async def test_a_lane_stuck_on_a_lock_fills_only_its_share_and_a_stop_answers_its_sends(
    alice, bob, charlie, private_queue
):
    """Each lane may hold its share of the queue's bound: sends piling up
    behind a lock in one lane are refused past it, while another lane's are
    still taken and stored. Stopping the queue answers every send it holds
    (a socket holds later acks back until earlier sends are answered)."""
    queue, _ = private_queue
    stuck = await sync_to_async(direct)(alice, bob)
    other = await sync_to_async(direct)(alice, charlie)
    while other % 2 == stuck % 2:  # the lane is the conversation id modulo 2
        other = await sync_to_async(group)(alice, charlie)
    with conversation_locked(stuck):
        held = [queue.submit(Send(stuck, alice.id, "s0", "zero"))]
        await asyncio.sleep(0.5)  # taken: its call waits on the lock
        held += [queue.submit(Send(stuck, alice.id, f"s{n}", "more")) for n in (1, 2)]
        with pytest.raises(Overloaded):
            queue.submit(Send(stuck, alice.id, "s3", "more"))

        elsewhere = queue.submit(Send(other, alice.id, "o1", "other lane"))
        assert (await asyncio.wait_for(elsewhere, 10)).status == "created"
        assert not any(f.done() for f in held)
        await queue.close()
        assert [type(f.exception()) for f in held] == [Unknown] * 3


async def test_the_orm_send_path_gives_the_same_message_text(alice, bob, monkeypatch):
    """SQLite's path (the embedded default) answers with the message as JSON
    text too, in the wire shape, for the same frames."""
    # Its worker thread keeps its connection open for the next write; here it
    # closes it, so the test database can be dropped after the run.
    monkeypatch.setattr("chatproject.realtime.close_old_connections", connections.close_all)
    conversation = await sync_to_async(direct)(alice, bob)
    (stored,), outgoing = await _store_orm([Send(conversation, alice.id, "o1", "hi")])

    message = await sync_to_async(Message.objects.get)(pk=stored.message_id)
    await sync_to_async(connections.close_all)()
    assert json.loads(stored.message) == wire.message_dict(message)
    assert {user_id for user_id, _ in outgoing} == {alice.id, bob.id}


async def test_on_the_orm_path_a_failing_send_does_not_cost_the_others_their_delivery(
    alice, bob, monkeypatch, private_queue
):
    """SQLite's path stores a batch one send at a time: when one fails (the
    database is locked), the sends before and after it are still answered
    and delivered live, and only the failed one gets the error to resend."""
    from django.db import OperationalError

    from messaging import send_queue as module

    monkeypatch.setattr("chatproject.realtime.close_old_connections", connections.close_all)
    queue, layer = private_queue
    queue.postgresql = False
    conversation = await sync_to_async(direct)(alice, bob)
    bobs_phone = await layer.new_channel()
    await layer.group_add(f"user.{bob.id}", bobs_phone)

    def locked_for_b2(send):
        if send.client_msg_id == "b2":
            raise OperationalError("database is locked")
        return module_send(send)

    module_send = module.message_send_orm
    monkeypatch.setattr(module, "message_send_orm", locked_for_b2)
    # Submitted in one turn of the loop: one batch.
    sends = [queue.submit(Send(conversation, alice.id, f"b{n}", f"text {n}")) for n in (1, 2, 3)]
    await asyncio.wait(sends, timeout=10)

    delivered = [await _receive(layer, bobs_phone) for _ in range(2)]
    await sync_to_async(connections.close_all)()
    assert sends[0].result().status == sends[2].result().status == "created"
    assert isinstance(sends[1].exception(), OperationalError)
    assert [d["event"]["message"]["text"] for d in delivered] == ["text 1", "text 3"]


def test_ack_and_event_frames_are_valid_json_with_and_without_a_cursor():
    message = wire.message_json({"id": 7, "text": 'a "quoted" \\ line\nnext ✓'})
    assert json.loads(wire.ack_text("m.1", False, message, None)) == {
        "type": "ack",
        "client_msg_id": "m.1",
        "duplicate": False,
        "message": {"id": 7, "text": 'a "quoted" \\ line\nnext ✓'},
    }
    assert json.loads(wire.ack_text("m.1", True, message, 12))["cursor"] == 12
    assert json.loads(wire.message_event_text(12, message)) == {
        "type": "event",
        "cursor": 12,
        "kind": "message.new",
        "message": {"id": 7, "text": 'a "quoted" \\ line\nnext ✓'},
    }


async def test_a_stalled_publish_stops_the_queue_past_four_pending_and_keeps_batch_order(
    alice, bob, monkeypatch, private_queue
):
    """Publishes to other servers run behind the stores; while Redis stalls,
    the queue stores on until more than four batches' publishes wait, then
    stops storing instead of piling up tasks. Each publish waits for the one
    before it, so they leave in batch order however Redis answers."""
    from messaging import send_queue as module

    queue, _ = private_queue
    conversation = await sync_to_async(direct)(alice, bob)
    published: list[list[str]] = []
    calls: list[tuple[asyncio.Task | None, asyncio.Task]] = []
    gates: list[asyncio.Event] = []

    def stalled_publish(outgoing, previous):
        gate = asyncio.Event()
        gates.append(gate)

        async def publish() -> None:
            if previous is not None:
                await previous
            await gate.wait()
            published.append(sorted({json.loads(m["message"])["text"] for _, m in outgoing}))

        task = asyncio.create_task(publish())
        calls.append((previous, task))
        return task

    monkeypatch.setattr(module, "send_many_in_turn", stalled_publish)
    for n in range(1 + module.MAX_PUBLISHING):
        stored = queue.submit(Send(conversation, alice.id, f"p{n}", f"m{n}"))
        assert (await asyncio.wait_for(stored, 10)).status == "created"
    held = queue.submit(Send(conversation, alice.id, "held", "held"))
    await asyncio.sleep(0.5)
    assert not held.done()  # not stored while five publishes wait

    # Redis answers the newest first: the publishes still leave in order.
    for gate in reversed(gates):
        gate.set()
    assert (await asyncio.wait_for(held, 10)).status == "created"
    gates[-1].set()
    await asyncio.wait_for(calls[-1][1], 10)
    assert published == [[f"m{n}"] for n in range(1 + module.MAX_PUBLISHING)] + [["held"]]
    # Each publish was chained to the one before it while that one was
    # still under way (a finished one is not waited for).
    tasks = [task for _, task in calls]
    assert [previous for previous, _ in calls[:-1]] == [None, *tasks[:-2]]
    assert calls[-1][0] in (None, tasks[-2])


async def test_a_stopping_server_enqueues_waiting_pushes_and_later_ones_at_once(monkeypatch):
    """Pushes wait for their window to be enqueued together; once the server
    is stopping (`hurry`) what waits goes out at once, and so does whatever
    a batch finishing later adds, instead of waiting out a window the
    process will not live to see."""
    from messaging import send_queue as module

    enqueued: list[list[int]] = []
    monkeypatch.setattr(module, "_enqueue_pushes", enqueued.append)
    pushes = module.PushCoalescer(window=3600.0)
    pushes.add([1, 2])
    await asyncio.sleep(0.2)
    assert enqueued == []  # waiting for the window

    pushes.hurry()
    await asyncio.wait_for(pushes.flushed(), 5)
    assert enqueued == [[1, 2]]
    pushes.add([3])
    await asyncio.wait_for(pushes.flushed(), 5)
    assert enqueued == [[1, 2], [3]]
