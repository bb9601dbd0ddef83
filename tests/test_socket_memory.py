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
