"""What an idle chat socket keeps that it does not need.

Memory per idle socket is a goal (docs/benchmarks.md: <= 25 KB, 15,000
sockets per process). Most of it is daphne's, Twisted's and autobahn's
per-connection state, which we do not own; these two pieces are ours to let go
of, measured with tracemalloc on 1,000 idle sockets.
"""

import asyncio
import collections
import gc
from typing import Any

# Never appended to: an unbounded queue's put never waits.
_NO_PUTTERS: collections.deque[Any] = collections.deque()
# Never waited on: nobody joins a socket's queue.
_NO_JOIN = asyncio.Event()


def slim_mailbox(queue: "asyncio.Queue[Any]") -> None:
    """daphne's per-socket queue (our mailbox) is an unbounded asyncio.Queue:
    its deque of waiting putters and its `join()` Event are never used, and
    cost ~1.7 KB per socket. Share one of each between all sockets. Only for
    the exact class whose internals are known; anything else is left alone."""
    if (
        type(queue) is asyncio.Queue
        and queue.maxsize <= 0
        and isinstance(getattr(queue, "_putters", None), collections.deque)
        and not queue._putters  # type: ignore[attr-defined]
        and isinstance(getattr(queue, "_finished", None), asyncio.Event)
    ):
        queue._putters = _NO_PUTTERS  # type: ignore[attr-defined]
        queue._finished = _NO_JOIN  # type: ignore[attr-defined]


def drop_handshake_headers(scope: dict[str, Any]) -> None:
    """The handshake's headers are read while connecting only (auth, Origin).
    Their list is shared by every copy of the scope (daphne's, each
    middleware's) and would live as long as the socket: ~1.3 KB of tuples."""
    headers = scope.get("headers")
    if isinstance(headers, list):
        headers.clear()


# A socket that closes leaves cycles among objects that are old by then (its
# consumer, daphne's and Twisted's state, the cancelled task's frames), which
# only a full collection frees. chatproject/asgi.py makes full collections
# rare so that chat traffic does not pause every socket for one; so they
# follow the sockets that closed instead: one per this many, in this process.
CLOSED_PER_COLLECTION = 1000
_closed = 0


def socket_closed() -> None:
    global _closed
    _closed += 1
    if _closed >= CLOSED_PER_COLLECTION:
        _closed = 0
        gc.collect()
