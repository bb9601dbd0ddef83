"""The foundation: health, production settings, the embedded default, the service runner."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.utils import timezone
from knox.models import AuthToken

from accounts.tasks import purge_expired_tokens
from tests.support.servers import free_port, wait_healthy
from tests.support.ws import open_socket

ROOT = Path(__file__).resolve().parents[1]


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_healthz_reports_postgres_and_redis_layer(live_daphne):
    status, body = get_json(f"{live_daphne.url}/healthz")

    assert status == 200
    assert body == {
        "status": "ok",
        "database": "postgresql",
        "channel_layer": "redis",
        "failing": {},
    }


@pytest.mark.slow
def test_healthz_names_the_channel_layer_when_redis_is_down(daphne_factory):
    server = daphne_factory(healthy=False, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")

    status, body = get_json(f"{server.url}/healthz")

    assert status == 503
    assert body["status"] == "unavailable"
    assert list(body["failing"]) == ["channel_layer"]
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_a_socket_is_told_to_come_back_later_while_redis_is_down(daphne_factory, alice):
    server = daphne_factory(healthy=False, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with open_socket(server.ws_url, token=alice.token) as sock:
        assert sock.closed_with(timeout=15) == 4503
    server.stop()


def test_deploy_check_is_clean_under_production_settings():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatproject.settings",
        "DEBUG": "0",
        "SECRET_KEY": "x7#kq2!vR9" * 6,
        "ALLOWED_HOSTS": "chat.example.com",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(DJANGO_SETTINGS_MODULE="chatproject.settings", DEBUG="0")

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.slow
def test_make_run_serves_the_embedded_default(tmp_path):
    """`make run` with no services: SQLite, in-memory layer, demo users, admin login."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY"}
    }
    env.update(VAR_DIR=str(tmp_path / "var"), PORT=str(port))
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log_path, timeout=120)
        status, body = get_json(f"http://127.0.0.1:{port}/healthz")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/") as response:
            admin_page = response.read().decode()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)

    output = log_path.read_text()
    assert status == 200
    assert body["database"] == "sqlite"
    assert body["channel_layer"] == "in-process"
    assert 'name="password"' in admin_page
    assert f"http://127.0.0.1:{port}/" in output
    assert "alice  / alice-demo-pass" in output
    assert (tmp_path / "var" / "db.sqlite3").exists()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_service_runner_starts_throwaway_postgres_and_redis_when_none_answer(tmp_path):
    dead_pg, dead_redis = free_port(), free_port()
    probe = (
        "import os, psycopg, redis, json;"
        "db = os.environ['DATABASE_URL']; r = os.environ['REDIS_URL'];"
        "psycopg.connect(db.rsplit('/', 1)[0] + '/postgres').execute('SELECT 1');"
        "redis.Redis.from_url(r).ping();"
        "print(json.dumps({'db': db, 'redis': r}))"
    )
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{dead_pg}/chat",
        "REDIS_URL": f"redis://127.0.0.1:{dead_redis}/0",
    }

    result = subprocess.run(
        [sys.executable, "tests/services.py", "--", sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert result.returncode == 0, result.stderr
    used = json.loads(result.stdout.strip().splitlines()[-1])
    assert "starting a throw-away PostgreSQL" in result.stderr
    assert "starting a throw-away Redis" in result.stderr
    pg_port = int(used["db"].split(":")[2].split("/")[0])
    redis_port = int(used["redis"].split(":")[2].split("/")[0])
    assert {pg_port, redis_port}.isdisjoint({dead_pg, dead_redis, 5432, 6379})
    # Thrown away afterwards.
    time.sleep(0.5)
    assert not _listening(pg_port)
    assert not _listening(redis_port)


@pytest.mark.django_db(transaction=True)
def test_celery_worker_runs_tasks_from_the_redis_broker(celery_worker, alice):
    token = AuthToken.objects.get(user=alice.user)
    AuthToken.objects.filter(pk=token.pk).update(expiry=timezone.now())

    purge_expired_tokens.delay()

    deadline = time.monotonic() + 10
    while AuthToken.objects.filter(user=alice.user).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not AuthToken.objects.filter(user=alice.user).exists()
