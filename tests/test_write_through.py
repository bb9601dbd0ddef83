"""Daphne's sockets send on the write (chatproject.write_through): bytes must
still arrive whole and in order when the kernel takes only part of a write,
and what Twisted would hold back (a pull producer's flow, an aborted
connection) is held back still.

A real TCP connection on loopback; Twisted's own test reactor records what the
transport asks of the event loop, and the test runs the loop's part by hand.
"""

import socket
import struct

import pytest
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock
from zope.interface import implementer

from chatproject.write_through import WriteThroughServer

BIG = bytes(range(256)) * 1200  # 300 KB: far more than the small buffers hold


@pytest.fixture
def connection():
    """(transport on the server side, the peer's socket, the test reactor)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        accepted, address = listener.accept()
    # Small buffers, so that the kernel soon takes only part of a write.
    accepted.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    peer.setblocking(False)
    reactor = MemoryReactorClock()
    transport = WriteThroughServer(accepted, Protocol(), address, None, 1, reactor)
    yield transport, peer, reactor
    peer.close()
    accepted.close()


def drain(peer: socket.socket) -> bytes:
    """What the peer can read now, making room in the kernel's buffers."""
    chunks = []
    try:
        while chunk := peer.recv(65536):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    return b"".join(chunks)


def read_to_end(transport: WriteThroughServer, peer: socket.socket, reactor) -> bytes:
    """Run the loop's writes until Twisted's buffer is empty, then read all."""
    received = drain(peer)
    while transport in reactor.getWriters():
        transport.doWrite()  # what the event loop does when the socket drains
        received += drain(peer)
    transport.socket.shutdown(socket.SHUT_WR)
    peer.settimeout(10)
    while chunk := peer.recv(65536):
        received += chunk
    return received


def test_a_write_to_an_idle_socket_is_on_the_wire_without_waiting_for_the_loop(connection):
    transport, peer, reactor = connection

    transport.write(b"hello")

    assert read_to_end(transport, peer, reactor) == b"hello"
    assert reactor.getWriters() == []  # the loop was never asked


def test_a_write_never_overtakes_bytes_still_queued(connection):
    transport, peer, reactor = connection

    transport.write(BIG)  # the kernel takes part, Twisted queues the rest
    head = drain(peer)  # room in the kernel again, bytes still queued
    transport.write(b"first")
    transport.doWrite()  # part of the queue sent, part left
    head += drain(peer)
    transport.write(b"second")

    assert head + read_to_end(transport, peer, reactor) == BIG + b"first" + b"second"


def test_a_write_to_a_vanished_peer_ends_the_connection_the_usual_way(connection):
    transport, peer, reactor = connection
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # lingering 0 s: the peer resets the connection

    transport.write(b"x" * 100_000)
    transport.write(b"after the reset")

    assert transport in reactor.getWriters()
    lost = None
    for _ in range(10):
        if (lost := transport.doWrite()) is not None:
            break
    assert lost is not None  # Twisted's signal to close the connection


def test_a_pull_producer_is_asked_for_more_once_its_data_is_out(connection):
    transport, peer, reactor = connection

    @implementer(IPullProducer)
    class Pages:
        def __init__(self) -> None:
            self.left = [b"page 1", b"page 2", b"page 3"]

        def resumeProducing(self) -> None:
            if self.left:
                transport.write(self.left.pop(0))

        def stopProducing(self) -> None:
            pass

    transport.registerProducer(Pages(), streaming=False)  # asks for the first page

    assert read_to_end(transport, peer, reactor) == b"page 1page 2page 3"


def test_nothing_is_sent_after_an_abort(connection):
    transport, peer, _ = connection

    transport.abortConnection()  # the reset itself happens on the loop's next turn
    transport.write(b"too late")

    assert drain(peer) == b""
