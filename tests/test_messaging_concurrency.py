"""Many senders at once while other devices drop and resync at random moments.

Two chat server processes (so two database threads really race), socket
senders pipelining with duplicate resends, REST senders in threads, and
readers that reconnect to either server and sometimes vanish without a close.
Every device must end with every inbox event exactly once and in order, every
conversation's messages in sequence order, and no sequence may have a gap."""

import asyncio
import json
import random
import urllib.request
import uuid
from collections import defaultdict

import pytest
from websockets.asyncio.client import connect

from messaging.models import Conversation, InboxEvent, Membership, Message
from tests.messaging_helpers import direct, group

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

USERS = 6
MESSAGES_PER_SENDER = 30
REST_MESSAGES_PER_USER = 10
READERS_PER_USER = 2


async def open_ws(url: str, token: str):
    return await connect(url, additional_headers={"Authorization": f"Bearer {token}"})


async def sender(url: str, token: str, conversations: list[int], rng: random.Random) -> int:
    """Sends as fast as acks come back, pipelining a few at a time."""
    ws = await open_ws(url, token)
    acked = 0
    try:
        pending: set[str] = set()
        for _ in range(MESSAGES_PER_SENDER):
            client_msg_id = uuid.uuid4().hex
            pending.add(client_msg_id)
            frame = {
                "type": "send",
                "conversation_id": rng.choice(conversations),
                "client_msg_id": client_msg_id,
                "text": f"msg {client_msg_id[:6]}",
            }
            await ws.send(json.dumps(frame))
            if rng.random() < 0.2:
                # A client that did not see its ack resends: nothing new is created.
                await ws.send(json.dumps(frame))
                pending.add(client_msg_id + "#dup")
            while len(pending) > 3:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if reply["type"] == "ack":
                    key = reply["client_msg_id"]
                    pending.discard(key + "#dup" if reply["duplicate"] else key)
                    acked += not reply["duplicate"]
                assert reply["type"] in ("ack", "event", "presence"), reply
        while pending:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if reply["type"] == "ack":
                key = reply["client_msg_id"]
                pending.discard(key + "#dup" if reply["duplicate"] else key)
                acked += not reply["duplicate"]
    finally:
        await ws.close()
    return acked


def rest_sender(base_url: str, token: str, conversations: list[int], seed: float) -> int:
    rng = random.Random(seed)
    for _ in range(REST_MESSAGES_PER_USER):
        body = json.dumps({"client_msg_id": uuid.uuid4().hex, "text": "over REST"}).encode()
        request = urllib.request.Request(
            f"{base_url}/api/v1/conversations/{rng.choice(conversations)}/messages/",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=20) as response:
            assert response.status == 201
    return REST_MESSAGES_PER_USER


async def reader(
    urls: list[str], token: str, done: asyncio.Event, rng: random.Random
) -> tuple[list[dict], int]:
    """Receives events, dropping the connection at random and resuming by cursor."""
    received: list[dict] = []
    cursor = 0
    connections = 0
    while True:
        # Senders can finish within one of this reader's connections on a fast
        # machine: drop and resync at least twice before the final catch-up.
        finishing = done.is_set() and connections >= 2
        ws = await open_ws(rng.choice(urls), token)
        connections += 1
        try:
            await ws.send(json.dumps({"type": "hello", "cursor": cursor}))
            deadline = asyncio.get_running_loop().time() + rng.uniform(0.05, 0.6)
            ready = False
            while True:
                timeout = (
                    20 if finishing or not ready else deadline - asyncio.get_running_loop().time()
                )
                if timeout <= 0:
                    break
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                except TimeoutError:
                    break
                if frame["type"] == "event":
                    received.append(frame)
                    cursor = frame["cursor"]
                elif frame["type"] == "ready":
                    ready = True
                    if finishing:
                        return received, connections
        finally:
            if rng.random() < 0.5:
                # Vanish without a close frame, as a phone losing its network.
                ws.transport.abort()
            else:
                await ws.close()


async def scenario(servers: list, tokens: dict[int, str], conversations_of: dict[int, list[int]]):
    rng = random.Random(1234)
    done = asyncio.Event()
    ws_urls = [server.ws_url for server in servers]
    readers = {
        (user_id, n): asyncio.create_task(reader(ws_urls, token, done, random.Random(rng.random())))
        for user_id, token in tokens.items()
        for n in range(READERS_PER_USER)
    }
    socket_senders = [
        sender(ws_urls[i % 2], token, conversations_of[user_id], random.Random(rng.random()))
        for i, (user_id, token) in enumerate(tokens.items())
    ]
    rest_senders = [
        asyncio.to_thread(
            rest_sender, servers[(i + 1) % 2].url, token, conversations_of[user_id], rng.random()
        )
        for i, (user_id, token) in enumerate(tokens.items())
    ]
    acked = await asyncio.gather(*socket_senders, *rest_senders)
    done.set()
    results = {key: await task for key, task in readers.items()}
    return sum(acked), results


def test_concurrent_senders_and_resyncing_devices_lose_and_duplicate_nothing(
    live_daphne, daphne_factory, make_member
):
    servers = [live_daphne, daphne_factory()]
    members = [make_member(f"user{i}") for i in range(USERS)]
    conversations = [group(members[0], *members[1:], title="everyone")]
    for a, b in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0), (0, 3)]:
        conversations.append(direct(members[a], members[b]))
    conversations_of = {
        m.id: list(
            Membership.objects.filter(user_id=m.id).values_list("conversation_id", flat=True)
        )
        for m in members
    }
    tokens = {m.id: m.token for m in members}

    acked, results = asyncio.run(scenario(servers, tokens, conversations_of))

    assert acked == USERS * (MESSAGES_PER_SENDER + REST_MESSAGES_PER_USER)
    assert Message.objects.count() == acked
    for conversation in Conversation.objects.all():
        seqs = list(
            Message.objects.filter(conversation=conversation)
            .order_by("seq")
            .values_list("seq", flat=True)
        )
        assert seqs == list(range(1, conversation.last_seq + 1))

    for (user_id, _), (frames, connections) in results.items():
        assert connections >= 3, "each device should have dropped and resynced"
        cursors = [f["cursor"] for f in frames]
        head = InboxEvent.objects.filter(user_id=user_id).count()
        # Every inbox event exactly once, in order.
        assert cursors == list(range(1, head + 1))
        per_conversation: dict[int, list[int]] = defaultdict(list)
        for frame in frames:
            if frame["kind"] == "message.new":
                message = frame["message"]
                per_conversation[message["conversation_id"]].append(message["seq"])
        for conversation_id in conversations_of[user_id]:
            last_seq = Conversation.objects.get(pk=conversation_id).last_seq
            assert per_conversation[conversation_id] == list(range(1, last_seq + 1))
