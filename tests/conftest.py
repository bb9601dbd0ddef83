"""Fixtures shared by the whole suite.

The suite runs only against real services: PostgreSQL and the Redis channel
layer. Without them it stops with an error instead of skipping (use
`make test`, which finds or starts both).
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest
from django.conf import settings
from django.test import Client

from tests.support.servers import DaphneServer, start_daphne


def pytest_configure(config: pytest.Config) -> None:
    engine = settings.DATABASES["default"]["ENGINE"]
    layer_url = settings.CHANNEL_LAYERS["default"]["CONFIG"]["url"]
    problems = []
    if engine != "django.db.backends.postgresql":
        problems.append(f"DATABASE_URL must point at PostgreSQL (engine is {engine})")
    if not layer_url:
        problems.append("REDIS_URL must be set (the channel layer would be in-process)")
    if problems:
        pytest.exit(
            "The tests need real services: " + "; ".join(problems) + ". Run `make test`.",
            returncode=3,
        )
    _retry_flush_on_deadlock()


def _retry_flush_on_deadlock() -> None:
    """Live servers and the Celery worker keep working for a moment after a
    test (a presence update, a push task); the TRUNCATE that empties the
    database between transactional tests can then deadlock with them. PostgreSQL
    aborts one side; when it is the TRUNCATE, run it again."""
    import time

    from django.test import testcases

    original = testcases.TransactionTestCase._fixture_teardown

    def teardown(self: testcases.TransactionTestCase) -> None:
        for attempt in range(5):
            try:
                return original(self)
            except Exception as error:  # flush's CommandError wraps the OperationalError
                text = f"{error} {error.__cause__} {error.__context__}"
                if "deadlock detected" not in text or attempt == 4:
                    raise
                time.sleep(0.2)
        return None

    testcases.TransactionTestCase._fixture_teardown = teardown


def pytest_report_header(config: pytest.Config) -> list[str]:
    db = settings.DATABASES["default"]
    return [
        f"database: PostgreSQL at {db.get('HOST')}:{db.get('PORT')}"
        f" (test database of {db['NAME']})",
        f"channel layer: {settings.CHANNEL_LAYERS['default']['BACKEND']} at {settings.REDIS_URL}",
        f"celery broker: {settings.CELERY_BROKER_URL} (eager={settings.CELERY_TASK_ALWAYS_EAGER})",
    ]


@pytest.fixture(scope="session")
def server_env(django_db_setup: None) -> dict[str, str]:
    """The environment under which server processes see the test database."""
    from django.db import connection

    parsed = urlparse(os.environ["DATABASE_URL"])
    test_db_url = urlunparse(parsed._replace(path=f"/{connection.settings_dict['NAME']}"))
    return {
        "DATABASE_URL": test_db_url,
        "REDIS_URL": settings.REDIS_URL,
        "REDIS_PREFIX": settings.REDIS_PREFIX,
        "SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DB_POOL_MIN": "1",
        "DB_POOL_MAX": "8",
    }


@pytest.fixture(scope="session")
def server_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def daphne_factory(server_env: dict[str, str], server_log_dir: Path) -> Iterator:
    """Start extra daphne processes (chat servers); all stopped at the end."""
    started: list[DaphneServer] = []

    def start(*, healthy: bool = True, advertise: bool = False, **extra_env: str) -> DaphneServer:
        server = start_daphne(
            {**server_env, **extra_env}, server_log_dir, healthy=healthy, advertise=advertise
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def live_daphne(daphne_factory) -> DaphneServer:
    """One daphne process serving the real ASGI app on a free port."""
    return daphne_factory()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: None, django_db_blocker) -> Iterator:
    """A real Celery worker consuming from the Redis broker, in a thread."""
    from celery.contrib.testing.worker import start_worker

    from chatproject.celery import app

    with (
        django_db_blocker.unblock(),
        start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker,
    ):
        yield worker


@dataclass
class Member:
    """A cast member: a user with an API token."""

    user: object
    token: str
    password: str

    @property
    def id(self) -> int:
        return self.user.pk

    @property
    def auth(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}


PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def make_member(db) -> object:
    from accounts.models import User
    from accounts.services import token_issue

    def make(username: str, **fields: object) -> Member:
        user = User.objects.create_user(username=username, password=PASSWORD, **fields)
        _, token = token_issue(user=user)
        return Member(user=user, token=token, password=PASSWORD)

    return make


@pytest.fixture
def alice(make_member) -> Member:
    return make_member("alice", display_name="Alice A.")


@pytest.fixture
def bob(make_member) -> Member:
    return make_member("bob", display_name="Bob B.")


@pytest.fixture
def charlie(make_member) -> Member:
    """Should have no access to alice's and bob's things."""
    return make_member("charlie", display_name="Charlie C.")


@pytest.fixture
def moderator(make_member):
    """A Django test client logged in as a staff superuser (the admin)."""
    member = make_member("mod", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(member.user)
    return client
