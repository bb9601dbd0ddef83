"""Daphne's sockets send on the write (chatproject.write_through): bytes must
still arrive whole and in order when the kernel takes only part of a write,
and a write to a vanished peer must end the connection the usual way.

A real TCP connection on loopback; Twisted's own test reactor records what the
transport asks of the event loop, and the test runs the loop's part by hand.
"""

import socket
import struct

import pytest
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor

from chatproject.write_through import WriteThroughServer


@pytest.fixture
def connection():
    """(transport on the server side, the peer's socket, the test reactor)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        accepted, address = listener.accept()
    # Small buffers, so that the kernel soon takes only part of a write.
    accepted.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reactor = MemoryReactor()
    transport = WriteThroughServer(accepted, Protocol(), address, None, 1, reactor)
    yield transport, peer, reactor
    peer.close()
    accepted.close()


def read_available(peer: socket.socket) -> bytes:
    peer.settimeout(0.2)
    chunks = []
    try:
        while chunk := peer.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def test_a_write_to_an_idle_socket_is_on_the_wire_without_waiting_for_the_loop(connection):
    transport, peer, reactor = connection

    transport.write(b"hello")

    assert read_available(peer) == b"hello"
    assert transport not in reactor.getWriters()  # nothing left for the loop to do


def test_what_the_kernel_does_not_take_follows_in_order(connection):
    transport, peer, reactor = connection
    big = bytes(range(256)) * 20_000  # 5 MB: far more than the buffers hold
    writes = [b"first", big, b"second", b"third"]

    for data in writes:
        transport.write(data)
    assert transport in reactor.getWriters()  # the rest waits for writability
    received = read_available(peer)
    while transport in reactor.getWriters():
        transport.doWrite()  # what the event loop does when the socket drains
        received += read_available(peer)
    transport.socket.shutdown(socket.SHUT_WR)  # all handed to the kernel: end the stream
    peer.settimeout(10)
    while chunk := peer.recv(65536):
        received += chunk

    assert received == b"".join(writes)


def test_a_write_to_a_vanished_peer_ends_the_connection_the_usual_way(connection):
    transport, peer, reactor = connection
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # lingering 0 s: the peer resets the connection
    transport.write(b"x" * 100_000)  # the first write may still be taken by the kernel

    transport.write(b"after the reset")

    assert transport in reactor.getWriters()
    lost = None
    for _ in range(10):
        if (lost := transport.doWrite()) is not None:
            break
    assert lost is not None  # Twisted's signal to close the connection
