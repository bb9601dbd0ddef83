"""The memory trims of an idle socket leave its mailbox and scope working."""

import asyncio

from messaging.socket_memory import drop_handshake_headers, slim_mailbox


async def test_a_slimmed_mailbox_still_delivers_in_order_to_a_waiting_reader():
    first, second = asyncio.Queue(), asyncio.Queue()
    slim_mailbox(first)
    slim_mailbox(second)
    # The unused parts are shared, the used ones are each queue's own.
    assert first._putters is second._putters
    assert first._queue is not second._queue
    waiting = asyncio.ensure_future(first.get())
    await asyncio.sleep(0)
    first.put_nowait("a")
    first.put_nowait("b")
    second.put_nowait("other")
    assert await waiting == "a"
    assert await first.get() == "b"
    assert first.empty()
    assert await second.get() == "other"


async def test_a_bounded_queue_is_left_alone():
    bounded = asyncio.Queue(maxsize=1)
    putters = bounded._putters
    slim_mailbox(bounded)
    assert bounded._putters is putters


def test_dropping_the_handshake_headers_empties_the_list_every_scope_copy_shares():
    headers = [(b"authorization", b"Bearer x"), (b"origin", b"http://x")]
    scope = {"type": "websocket", "headers": headers}
    copy = dict(scope, user=None)
    drop_handshake_headers(copy)
    assert scope["headers"] == [] and headers == []


def test_closed_sockets_cycles_are_freed_by_a_full_collection_every_so_many(monkeypatch):
    """The server's GC thresholds make full collections rare, so closed
    sockets bring them about: what they leave in cycles is freed."""
    import gc
    import weakref

    from messaging import socket_memory

    class Consumer:  # stands for a closed socket's objects, in a cycle
        pass

    monkeypatch.setattr(socket_memory, "CLOSED_PER_COLLECTION", 3)
    monkeypatch.setattr(socket_memory, "_closed", 0)
    gc.disable()  # no automatic collection may free it first
    try:
        consumer = Consumer()
        consumer.me = consumer
        alive = weakref.ref(consumer)
        gc.collect()  # it has lived long: in the oldest generation now
        del consumer
        socket_memory.socket_closed()
        socket_memory.socket_closed()
        kept_until_then = alive() is not None
        socket_memory.socket_closed()

        assert kept_until_then
        assert alive() is None
    finally:
        gc.enable()
