"""Presence over real sockets on live daphne servers and real Redis.

The test settings beat every 0.5 s and time out after 2 s. Cast: alice comes
and goes, bob is her contact (a direct conversation), charlie is a stranger."""

import asyncio
import time

import pytest

from accounts.models import User
from presence.services import is_online
from tests.messaging_helpers import api, direct, group
from tests.support.ws import Socket, open_socket

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 2.0
BEAT = 0.5


def online(server, member) -> Socket:
    sock = open_socket(server.ws_url, token=member.token)
    sock.send({"type": "hello", "cursor": None})
    sock.expect("ready")
    return sock


def presence_frames(sock: Socket, seconds: float, user_id: int) -> list[dict]:
    return [
        f for f in sock.frames_for(seconds) if f["type"] == "presence" and f["user_id"] == user_id
    ]


def keep_beating(sock: Socket, seconds: float) -> list[dict]:
    frames = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.send({"type": "heartbeat"})
        frames += sock.frames_for(BEAT)
    return frames


def test_a_contact_sees_one_online_event_when_a_user_connects(live_daphne, alice, bob):
    direct(alice, bob)
    with online(live_daphne, bob) as bob_phone:
        alice_phone = online(live_daphne, alice)
        with alice_phone:
            event = bob_phone.expect("presence", user_id=alice.id)
            assert event["status"] == "online"
            assert event["last_active_at"].endswith("Z")
            # A second device and heartbeats change nothing: no more events.
            alice_laptop = online(live_daphne, alice)
            with alice_laptop:
                alice_phone.send({"type": "heartbeat"})
                alice_laptop.send({"type": "heartbeat"})
                assert presence_frames(bob_phone, 1.0, alice.id) == []


def test_a_user_stays_online_while_a_second_device_stays(live_daphne, alice, bob):
    direct(alice, bob)
    with online(live_daphne, bob) as bob_phone:
        alice_phone = online(live_daphne, alice)
        alice_laptop = online(live_daphne, alice)
        bob_phone.expect("presence", user_id=alice.id, status="online")

        alice_phone.close()
        frames = keep_beating(alice_laptop, TIMEOUT + 1)

        assert [f for f in frames if f.get("user_id") == alice.id] == []
        assert presence_frames(bob_phone, 0.2, alice.id) == []
        assert is_online(alice.id)
        body = api(bob).get(f"/api/v1/presence/?user_ids={alice.id}").json()
        assert body[0]["status"] == "online"
        alice_laptop.close()


def test_the_last_clean_close_makes_a_user_offline_at_once(live_daphne, alice, bob):
    direct(alice, bob)
    with online(live_daphne, bob) as bob_phone:
        alice_phone = online(live_daphne, alice)
        bob_phone.expect("presence", user_id=alice.id, status="online")

        closed_at = time.monotonic()
        alice_phone.close()
        event = bob_phone.expect("presence", user_id=alice.id, timeout=TIMEOUT)
        noticed_after = time.monotonic() - closed_at

        assert event["status"] == "offline"
        assert noticed_after < TIMEOUT / 2  # well before any timeout could fire
        assert presence_frames(bob_phone, TIMEOUT + 1, alice.id) == []
    assert not is_online(alice.id)
    assert User.objects.get(pk=alice.id).last_active_at is not None


def test_heartbeats_keep_a_user_online_past_the_timeout(live_daphne, alice, bob):
    direct(alice, bob)
    with online(live_daphne, bob) as bob_phone, online(live_daphne, alice) as alice_phone:
        bob_phone.expect("presence", user_id=alice.id, status="online")

        keep_beating(alice_phone, TIMEOUT * 2)

        assert presence_frames(bob_phone, 0.2, alice.id) == []
        assert is_online(alice.id)


def test_a_silent_device_goes_offline_within_timeout_and_one_beat(live_daphne, alice, bob):
    direct(alice, bob)
    with online(live_daphne, bob) as bob_phone:
        # A dropped network: the socket stays open but nothing is read or written.
        alice_phone = online(live_daphne, alice)
        last_beat = time.monotonic()
        bob_phone.expect("presence", user_id=alice.id, status="online")

        event = bob_phone.expect("presence", user_id=alice.id, timeout=TIMEOUT + 3)
        silent_for = time.monotonic() - last_beat

        assert event["status"] == "offline"
        assert TIMEOUT - 0.2 <= silent_for <= TIMEOUT + BEAT + 1.0
        assert presence_frames(bob_phone, 1.0, alice.id) == []
        alice_phone.close()


def test_a_killed_chat_server_leaves_no_one_online(live_daphne, daphne_factory, alice, bob):
    doomed = daphne_factory()
    direct(alice, bob)
    with online(live_daphne, bob) as bob_phone:
        online(doomed, alice)  # alice's only socket, on the server about to die
        bob_phone.expect("presence", user_id=alice.id, status="online")

        killed_at = time.monotonic()
        doomed.kill()
        event = bob_phone.expect("presence", user_id=alice.id, timeout=TIMEOUT + 3)

        assert event["status"] == "offline"
        assert time.monotonic() - killed_at <= TIMEOUT + BEAT + 1.0
    assert not is_online(alice.id)


def test_members_of_small_groups_get_live_presence_and_big_groups_do_not(
    daphne_factory, alice, bob, make_member
):
    server = daphne_factory(PRESENCE_FANOUT_MAX_GROUP="3")
    carol, dave = make_member("carol"), make_member("dave")
    group(bob, alice, carol, title="small")  # 3 members: live
    group(dave, alice, carol, bob, title="big")  # 4 members: on demand
    with online(server, carol) as carol_phone, online(server, dave) as dave_phone:
        with online(server, alice):
            assert carol_phone.expect("presence", user_id=alice.id)["status"] == "online"
            assert presence_frames(dave_phone, 0.8, alice.id) == []
            body = api(dave).get(f"/api/v1/presence/?user_ids={alice.id},{carol.id}").json()
        assert [(p["user_id"], p["status"]) for p in body] == [
            (alice.id, "online"),
            (carol.id, "online"),
        ]


def test_presence_on_demand_answers_only_for_people_who_share_a_conversation(alice, bob, charlie):
    direct(alice, bob)

    mine = api(bob).get(f"/api/v1/presence/?user_ids={alice.id},{bob.id}")
    stranger = api(charlie).get(f"/api/v1/presence/?user_ids={alice.id}")
    unknown = api(bob).get("/api/v1/presence/?user_ids=999999")
    malformed = api(bob).get("/api/v1/presence/?user_ids=a,b")
    anonymous = api().get(f"/api/v1/presence/?user_ids={alice.id}")
    repeated = api(bob).get("/api/v1/presence/?user_ids=" + ",".join([str(alice.id)] * 201))

    assert mine.status_code == 200
    assert [p["status"] for p in mine.json()] == ["offline", "offline"]
    assert stranger.status_code == 404
    assert stranger.json()["code"] == "user_not_found"
    assert unknown.status_code == 404
    assert malformed.status_code == 400
    assert anonymous.status_code == 401
    assert [p["user_id"] for p in repeated.json()] == [alice.id]  # one id, asked 201 times


def test_strangers_hear_nothing(live_daphne, alice, charlie):
    with online(live_daphne, charlie) as charlie_phone, online(live_daphne, alice):
        assert presence_frames(charlie_phone, 1.0, alice.id) == []


# --- heartbeats recorded in batches (presence.services.note_beat) ----------------


@pytest.fixture(params=["redis", "memory"])
async def store(request, monkeypatch):
    """A store of its own (Redis under a fresh prefix, or process memory),
    made on the test's event loop, with no beats left noted by other tests."""
    import uuid

    from django.conf import settings

    from presence import services
    from presence.store import MemoryPresenceStore, RedisPresenceStore

    made = (
        RedisPresenceStore(settings.REDIS_URL, f"{settings.REDIS_PREFIX}:{uuid.uuid4().hex}")
        if request.param == "redis"
        else MemoryPresenceStore()
    )
    monkeypatch.setattr(services, "get_store", lambda: made)
    monkeypatch.setattr(services, "_noted", {})
    monkeypatch.setattr(services, "_closes", {})
    yield made
    if isinstance(made, RedisPresenceStore):
        await made.client.aclose()
        made.sync.close()


async def test_last_seen_is_when_the_last_device_closed_not_its_last_beat(store):
    """The offline event says the close; a later presence query must not say
    the last beat, up to a heartbeat earlier."""
    at = time.time()
    await store.beat(1, "phone", at, TIMEOUT)
    await store.beat(1, "laptop", at + 0.5, TIMEOUT)
    await store.leave(1, "laptop", at + 1)
    await store.leave(1, "phone", at + 1.5)  # before its beat ran out, at + TIMEOUT

    (status,) = store.statuses([1], at + 10)
    assert (status.online, status.last_active_at) == (False, at + 1.5)

    # A device whose beats had run out was last seen at its last beat, as the
    # sweep announced: closing it later does not move that.
    await store.beat(2, "phone", at, TIMEOUT)
    await store.expire(2, "phone", at + TIMEOUT + 1)
    await store.leave(2, "phone", at + TIMEOUT + 60)
    assert store.statuses([2], at + TIMEOUT + 61)[0].last_active_at == at


async def test_beats_recorded_together_answer_as_one_at_a_time_would(store):
    from presence.store import Beat, MemoryPresenceStore

    at = time.time()
    first = await store.beat_many([Beat(1, "phone", at), Beat(2, "phone", at)], TIMEOUT)
    again = await store.beat_many([Beat(1, "phone", at + 1), Beat(2, "laptop", at + 1)], TIMEOUT)
    gone = await store.leave(1, "phone", at + 2)
    back = await store.beat_many([Beat(1, "phone", at + 3)], TIMEOUT)
    (one,) = store.statuses([1], at + 3.5)
    (two,) = store.statuses([2], at + 2.5)  # its laptop's beat lasts until at + 3

    singles = MemoryPresenceStore()  # the same beats one at a time
    one_by_one = [await singles.beat(u, "phone", at, TIMEOUT) for u in (1, 2)]

    assert all(first) and again == [0, 0] and gone > first[0]
    assert [bool(v) for v in first] == [bool(v) for v in one_by_one]
    assert back[0] > gone  # online again, announced with a newer version
    assert (one.online, one.last_active_at) == (True, at + 3)
    assert (two.online, two.last_active_at) == (True, at + 1)
    assert store.statuses([1], at + 3 + TIMEOUT + 0.1)[0].online is False


async def test_noted_beats_keep_a_device_online_once_recorded(store):
    from presence import services

    services.note_beat(user_id=7, device="phone")
    services.note_beat(user_id=8, device="phone")
    services.note_beat(user_id=7, device="phone")  # the newest of a device counts once

    assert store.statuses([7], time.time())[0].online is False  # not recorded yet
    assert await services.record_noted_beats() == 2
    assert await services.record_noted_beats() == 0
    assert [s.online for s in store.statuses([7, 8], time.time())] == [True, True]


async def test_a_device_that_left_is_not_brought_back_by_its_noted_beat(store):
    from presence import services

    await services.device_beat(user_id=7, device="phone")  # connected
    services.note_beat(user_id=7, device="phone")
    await services.device_left(user_id=7, device="phone")

    assert await services.record_noted_beats() == 0
    assert store.statuses([7], time.time())[0].online is False


async def test_a_device_leaving_while_its_beat_is_recorded_waits_for_it(store, monkeypatch):
    from presence import services

    entered, release = asyncio.Event(), asyncio.Event()
    real = store.beat_many

    async def slow(beats, ttl):
        entered.set()
        await release.wait()  # Redis slow to answer: the beat is on its way
        return await real(beats, ttl)

    monkeypatch.setattr(store, "beat_many", slow)
    await services.device_beat(user_id=7, device="phone")
    services.note_beat(user_id=7, device="phone")
    recording = asyncio.create_task(services.record_noted_beats())
    await entered.wait()
    leaving = asyncio.create_task(services.device_left(user_id=7, device="phone"))
    await asyncio.sleep(0.1)
    left_early = leaving.done()
    release.set()
    await recording
    await leaving

    assert left_early is False
    assert store.statuses([7], time.time())[0].online is False


async def test_beats_whose_recording_failed_are_recorded_next_time(store, monkeypatch):
    from presence import services

    real = store.beat_many

    async def down(beats, ttl):
        raise ConnectionError("Redis restarting")

    services.note_beat(user_id=7, device="phone")
    monkeypatch.setattr(store, "beat_many", down)
    assert await services.record_noted_beats() == 0
    assert store.statuses([7], time.time())[0].online is False
    monkeypatch.setattr(store, "beat_many", real)

    assert await services.record_noted_beats() == 1
    assert store.statuses([7], time.time())[0].online is True


async def test_a_device_leaving_while_its_recording_fails_stays_gone(store, monkeypatch):
    from presence import services

    entered, release = asyncio.Event(), asyncio.Event()

    async def failing(beats, ttl):
        entered.set()
        await release.wait()
        raise ConnectionError("Redis restarting")

    await services.device_beat(user_id=7, device="phone")
    services.note_beat(user_id=7, device="phone")
    real = store.beat_many
    monkeypatch.setattr(store, "beat_many", failing)
    recording = asyncio.create_task(services.record_noted_beats())
    await entered.wait()
    leaving = asyncio.create_task(services.device_left(user_id=7, device="phone"))
    await asyncio.sleep(0.05)
    release.set()
    await recording
    await leaving
    monkeypatch.setattr(store, "beat_many", real)

    assert await services.record_noted_beats() == 0  # the failed beat was not kept
    assert store.statuses([7], time.time())[0].online is False


@pytest.mark.parametrize("store", ["redis"], indirect=True)  # the error is Redis's
async def test_a_beat_redis_refuses_fails_alone_and_is_kept(store):
    from presence import services

    devices_key = store._keys(8)[0]
    await store.client.set(devices_key, "not a sorted set")  # ZADD answers WRONGTYPE
    services.note_beat(user_id=7, device="phone")
    services.note_beat(user_id=8, device="phone")

    assert await services.record_noted_beats() == 1
    assert [s.online for s in store.statuses([7], time.time())] == [True]
    await store.client.delete(devices_key)
    assert await services.record_noted_beats() == 1  # 8's beat, kept and recorded now
    assert store.statuses([8], time.time())[0].online is True


async def test_recording_announces_users_back_online_even_if_one_announcement_fails(
    store, monkeypatch
):
    from presence import services

    announced = []

    async def announce(user_id, *, online, at, version):
        if user_id == 7:
            raise RuntimeError("the database went away")
        announced.append((user_id, online, version > 0))

    await services.device_beat(user_id=9, device="phone")  # online already
    monkeypatch.setattr(services, "_announce", announce)
    for user_id in (7, 8, 9):
        services.note_beat(user_id=user_id, device="phone")

    assert await services.record_noted_beats() == 3
    assert announced == [(8, True, True)]  # 7 failed, 9 had not changed


# --- sockets closing together (presence.services.device_left) --------------------


@pytest.fixture
def pairs(make_member):
    """Ten leavers, each in a direct conversation with a watcher of their own."""
    made = []
    for i in range(10):
        leaver, watcher = make_member(f"leaver{i}"), make_member(f"watcher{i}")
        direct(leaver, watcher)
        made.append((leaver.id, watcher.id))
    return made


async def connected(heard: list, *user_ids: int) -> None:
    """A device of each of these users connected; what that announced is forgotten."""
    from presence import services

    for user_id in user_ids:
        await services.device_beat(user_id=user_id, device="phone")
    heard.clear()


@pytest.fixture
def heard(monkeypatch):
    """What presence hands to the channel layer: (recipient, frame)."""
    from presence import services

    frames: list[tuple[int, dict]] = []

    async def send_many(messages):
        frames.extend((user_id, message["frame"]) for user_id, message in messages)

    monkeypatch.setattr(services, "send_many", send_many)
    return frames


async def test_sockets_closing_together_go_offline_and_each_contact_hears_once(
    store, pairs, heard, monkeypatch
):
    from presence import services

    batches = []
    real = store.leave_many

    async def counted(devices, at):
        batches.append(len(devices))
        return await real(devices, at)

    monkeypatch.setattr(store, "leave_many", counted)
    await connected(heard, *(leaver for leaver, _ in pairs))

    await asyncio.gather(
        *(services.device_left(user_id=leaver, device="phone") for leaver, _ in pairs)
    )

    leavers = [leaver for leaver, _ in pairs]
    assert batches == [len(pairs)]  # one Redis round trip, one database trip
    assert [s.online for s in store.statuses(leavers, time.time())] == [False] * len(pairs)
    assert sorted((to, f["user_id"], f["status"]) for to, f in heard) == sorted(
        (watcher, leaver, "offline") for leaver, watcher in pairs
    )
    seen = await asyncio.to_thread(
        lambda: list(User.objects.filter(pk__in=leavers).values_list("last_active_at", flat=True))
    )
    assert None not in seen  # "last seen" kept for each


async def test_a_user_whose_devices_close_together_goes_offline_once(store, pairs, heard):
    from presence import services

    (leaver, watcher), *_ = pairs
    await services.device_beat(user_id=leaver, device="phone")
    await services.device_beat(user_id=leaver, device="laptop")
    heard.clear()

    await asyncio.gather(
        services.device_left(user_id=leaver, device="phone"),
        services.device_left(user_id=leaver, device="laptop"),
    )

    assert [(to, f["user_id"], f["status"]) for to, f in heard] == [(watcher, leaver, "offline")]
    assert heard[0][1]["version"] == store.statuses([leaver], time.time())[0].version


async def test_closes_that_come_while_a_batch_is_in_redis_form_the_next_batch(
    store, pairs, heard, monkeypatch
):
    from presence import services

    (first, _), (second, _), (third, _), *_ = pairs
    await connected(heard, first, second, third)
    batches, entered, release = [], asyncio.Event(), asyncio.Event()
    real = store.leave_many

    async def slow(devices, at):
        batches.append(sorted(user_id for user_id, _ in devices))
        entered.set()
        await release.wait()
        return await real(devices, at)

    monkeypatch.setattr(store, "leave_many", slow)
    leaving = [asyncio.create_task(services.device_left(user_id=first, device="phone"))]
    await entered.wait()  # the first close is in Redis; two more come meanwhile
    leaving += [
        asyncio.create_task(services.device_left(user_id=u, device="phone"))
        for u in (second, third)
    ]
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.gather(*leaving)

    assert batches == [[first], sorted([second, third])]
    assert sorted(f["user_id"] for _, f in heard) == sorted([first, second, third])
    assert services._closes == {}  # the recorder is gone until the next close


async def test_closes_reach_redis_while_an_earlier_batch_waits_for_the_database(
    store, pairs, heard, monkeypatch, settings
):
    import threading

    from presence import services

    settings.PRESENCE_TIMEOUT = 60  # offline below means left, not timed out
    (first, first_watcher), (second, _), *_ = pairs
    await connected(heard, first, second)
    database_free = threading.Event()
    real = services._persist_and_find_contacts

    def slow_database(changes):
        if changes[0].user_id == first:
            database_free.wait(10)  # a long query ahead on the database thread
        return real(changes)

    monkeypatch.setattr(services, "_persist_and_find_contacts", slow_database)
    first_leaving = asyncio.create_task(services.device_left(user_id=first, device="phone"))
    await asyncio.sleep(0.1)
    second_leaving = asyncio.create_task(services.device_left(user_id=second, device="phone"))
    for _ in range(100):
        if not store.statuses([second], time.time())[0].online:
            break
        await asyncio.sleep(0.02)
    second_offline_meanwhile = not store.statuses([second], time.time())[0].online
    database_free.set()
    await asyncio.gather(first_leaving, second_leaving)

    assert second_offline_meanwhile
    assert (first_watcher, first) in [(to, f["user_id"]) for to, f in heard]


async def test_closers_of_a_cancelled_recorder_fail_and_later_closes_are_recorded(
    store, pairs, heard, monkeypatch
):
    from presence import services

    (first, _), (second, _), (third, third_watcher), *_ = pairs
    await connected(heard, first, second, third)
    entered, real = asyncio.Event(), store.leave_many

    async def hanging(devices, at):
        entered.set()
        await asyncio.Event().wait()  # never answers

    monkeypatch.setattr(store, "leave_many", hanging)
    leaving = [asyncio.create_task(services.device_left(user_id=first, device="phone"))]
    await entered.wait()
    leaving.append(asyncio.create_task(services.device_left(user_id=second, device="phone")))
    await asyncio.sleep(0)
    next(iter(services._closes.values())).task.cancel()  # the loop shutting down, say
    results = await asyncio.wait_for(asyncio.gather(*leaving, return_exceptions=True), 5)
    monkeypatch.setattr(store, "leave_many", real)
    await asyncio.wait_for(services.device_left(user_id=third, device="phone"), 5)

    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
    assert [(to, f["user_id"]) for to, f in heard] == [(third_watcher, third)]


async def test_a_closer_cancelled_while_waiting_still_goes_offline(store, pairs, heard):
    from presence import services

    (leaver, watcher), *_ = pairs
    await connected(heard, leaver)

    leaving = asyncio.ensure_future(services.device_left(user_id=leaver, device="phone"))
    await asyncio.sleep(0)  # queued
    leaving.cancel()  # daphne gave up on the closing socket
    for _ in range(100):
        if heard:
            break
        await asyncio.sleep(0.02)

    assert [(to, f["status"]) for to, f in heard] == [(watcher, "offline")]
    assert store.statuses([leaver], time.time())[0].online is False


async def test_closes_while_redis_is_away_fail_and_later_ones_are_recorded(
    store, pairs, heard, monkeypatch
):
    from presence import services

    (first, _), (second, watcher), *_ = pairs
    await connected(heard, first, second)
    real = store.leave_many

    async def down(devices, at):
        raise ConnectionError("Redis restarting")

    monkeypatch.setattr(store, "leave_many", down)
    with pytest.raises(ConnectionError):
        await services.device_left(user_id=first, device="phone")
    monkeypatch.setattr(store, "leave_many", real)
    await asyncio.wait_for(services.device_left(user_id=second, device="phone"), 5)

    assert [(to, f["user_id"], f["status"]) for to, f in heard] == [(watcher, second, "offline")]
    # The first is left to the sweep, as before: still listed until it expires.
    assert store.statuses([first], time.time())[0].online is True


@pytest.mark.parametrize("store", ["redis"], indirect=True)  # the error is Redis's
async def test_a_close_redis_refuses_fails_alone(store, pairs, heard):
    from presence import services

    (broken, _), (fine, watcher), *_ = pairs
    await connected(heard, fine)
    await store.client.set(store._keys(broken)[0], "not a sorted set")  # ZREM: WRONGTYPE

    results = await asyncio.gather(
        services.device_left(user_id=broken, device="phone"),
        services.device_left(user_id=fine, device="phone"),
        return_exceptions=True,
    )

    assert "WRONGTYPE" in str(results[0]) and results[1] is None
    assert [(to, f["user_id"], f["status"]) for to, f in heard] == [(watcher, fine, "offline")]


async def test_a_failed_announcement_does_not_keep_anyone_online(store, pairs, heard, monkeypatch):
    from presence import services

    def database_down(changes):
        raise RuntimeError("the database went away")

    leavers = [leaver for leaver, _ in pairs[:3]]
    await connected(heard, *leavers)
    monkeypatch.setattr(services, "_persist_and_find_contacts", database_down)

    await asyncio.gather(*(services.device_left(user_id=u, device="phone") for u in leavers))

    assert [s.online for s in store.statuses(leavers, time.time())] == [False] * 3


def test_contacts_are_direct_partners_and_small_groups_only(make_member, settings):
    from presence.services import contacts_of_many

    settings.PRESENCE_FANOUT_MAX_GROUP = 3
    names = ("ann", "ben", "cat", "dan", "eve", "fay")
    ann, ben, cat, dan, eve, fay = (make_member(name) for name in names)
    direct(ann, ben)
    direct(ann, cat)
    group(cat, ann, dan, title="small")  # 3 members: told
    group(eve, ann, ben, cat, title="big")  # 4 members: not told
    direct(eve, fay)

    both = contacts_of_many([ann.id, ben.id, eve.id, fay.id])

    assert both[ann.id] == sorted([ben.id, cat.id, dan.id])
    assert both[ben.id] == [ann.id]
    assert both[eve.id] == [fay.id]
    assert both[fay.id] == [eve.id]
    assert contacts_of_many([dan.id]) == {dan.id: sorted([ann.id, cat.id])}
    loner = make_member("loner")
    assert contacts_of_many([loner.id]) == {loner.id: []}
