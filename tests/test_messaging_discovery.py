"""Service discovery across chat servers (messaging.chat_servers): real daphne
processes register their addresses in Redis, and `GET /api/v1/chat-server/`
sends each client to the least loaded one that is up."""

import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from messaging import chat_servers
from tests.conftest import Member
from tests.messaging_helpers import api, connect
from tests.support.servers import DaphneServer

pytestmark = pytest.mark.django_db(transaction=True)

TTL = 3.0  # renewed every second: a killed server drops out within seconds


@pytest.fixture
def store() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def start_chat_server(
    daphne_factory: Callable[..., DaphneServer], store: redis.Redis
) -> Iterator[Callable[..., DaphneServer]]:
    """Chat servers that advertise themselves; none is left registered after."""
    started: list[DaphneServer] = []

    def start(ttl: float = TTL) -> DaphneServer:
        server = daphne_factory(advertise=True, CHAT_SERVER_TTL=str(ttl))
        started.append(server)
        wait_for(lambda: load_of(store, server) is not None, "registered")
        return server

    yield start
    for server in started:
        server.stop()
    # A killed server's registration would outlive the test by its TTL.
    store.delete(chat_servers._servers_key())
    for server in started:
        store.delete(chat_servers._load_prefix() + server.ws_url)


def load_of(store: redis.Redis, server: DaphneServer) -> int | None:
    value = store.get(chat_servers._load_prefix() + server.ws_url)
    return None if value is None else int(value)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not {what} after {timeout} s"
        time.sleep(0.05)


def discover(member: Member) -> str:
    response = api(member).get("/api/v1/chat-server/", HTTP_HOST="127.0.0.1:8123")
    assert response.status_code == 200
    return response.json()["url"]


def test_new_clients_go_to_the_chat_server_with_fewest_sockets(start_chat_server, store, alice):
    busy, quiet = start_chat_server(), start_chat_server()
    sockets = [connect(busy, alice)[0] for _ in range(3)]
    try:
        wait_for(lambda: load_of(store, busy) == 3, "3 sockets reported")

        picks = [discover(alice) for _ in range(3)]

        assert picks == [quiet.ws_url] * 3
        # The address works: a socket opened there is past hello.
        sock, ready = connect(quiet, alice)
        sock.close()
        assert ready["type"] == "ready"
    finally:
        for sock in sockets:
            sock.close()


def test_a_burst_of_clients_is_spread_over_the_chat_servers(start_chat_server, alice):
    # Renewals 5 s apart: the picks below see each other's counts, not the
    # servers' own (both zero) in between.
    one, two = start_chat_server(ttl=15), start_chat_server(ttl=15)

    picks = Counter(discover(alice) for _ in range(6))

    assert set(picks) == {one.ws_url, two.ws_url}
    assert max(picks.values()) <= 4


def test_a_stopped_chat_server_is_offered_no_more_and_a_dead_one_drops_out(
    start_chat_server, alice
):
    stays, stopped = start_chat_server(), start_chat_server()

    stopped.stop()  # SIGTERM: it removes itself before it exits

    assert {discover(alice) for _ in range(4)} == {stays.ws_url}

    stays.kill()  # SIGKILL: nothing removes it but its TTL
    wait_for(lambda: discover(alice) != stays.ws_url, "forgotten after its TTL", timeout=TTL + 5)
    # No chat server registered: the API server answers its own address.
    assert discover(alice) == "ws://127.0.0.1:8123/ws/chat/"


# The registry's Redis only (rate limits use the cache's): pick() fails, the
# request does not.
@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_discovery_answers_its_own_address_when_the_registry_cannot_be_read(alice):
    assert discover(alice) == "ws://127.0.0.1:8123/ws/chat/"
