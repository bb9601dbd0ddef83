"""Run a command against a real PostgreSQL and Redis.

Used by `make test`. It uses the servers at DATABASE_URL / REDIS_URL (default
127.0.0.1:5432 and :6379) when they answer; otherwise it starts throw-away
instances from the installed binaries (initdb/pg_ctl, redis-server) in a
temporary directory, runs the command with the URLs pointing at them, and
stops them after. Where a binary is missing it fails and says how to get it.
It never lets the tests run without the real services.

    python tests/services.py -- pytest -q
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from urllib.parse import urlparse, urlunparse

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/chat"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"

INSTALL_POSTGRES = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found. Install them:\n"
    "  Debian/Ubuntu: sudo apt-get install -y postgresql\n"
    "  Fedora:        sudo dnf install -y postgresql-server postgresql-contrib\n"
    "  macOS:         brew install postgresql@16\n"
    "or point DATABASE_URL at a running server."
)
INSTALL_REDIS = (
    "redis-server not found. Install it:\n"
    "  Debian/Ubuntu: sudo apt-get install -y redis-server\n"
    "  Fedora:        sudo dnf install -y redis\n"
    "  macOS:         brew install redis\n"
    "or point REDIS_URL at a running server."
)


def log(message: str) -> None:
    print(f"[services] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_answers(url: str) -> bool:
    import psycopg

    parsed = urlparse(url)
    # Connect to the maintenance database: the test database may not exist yet.
    maintenance = urlunparse(parsed._replace(path="/postgres"))
    try:
        with psycopg.connect(maintenance, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def find_pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def wait_for(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"[services] {what} did not come up within {timeout:.0f} s")


def start_postgres(stack: ExitStack) -> str:
    initdb, pg_ctl = find_pg_bin("initdb"), find_pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise SystemExit(INSTALL_POSTGRES)
    data_root = stack.enter_context(tempfile.TemporaryDirectory(prefix="chat-pg-"))
    data_dir = os.path.join(data_root, "data")
    port = free_port()
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb and pg_ctl refuse to run as root.
        user = "postgres" if _user_exists("postgres") else "nobody"
        shutil.chown(data_root, user=user)
        run_as = ["runuser", "-u", user, "--"]
    log(f"starting a throw-away PostgreSQL on port {port} ({initdb})")
    # cwd: the unprivileged user may not be able to enter the checkout.
    subprocess.run(
        [*run_as, initdb, "-D", data_dir, "-U", "postgres", "-A", "trust", "--no-sync"],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=data_root,
    )
    options = f"-p {port} -k {data_root} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [*run_as, pg_ctl, "-D", data_dir, "-o", options, "-l", f"{data_root}/log", "-w", "start"],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=data_root,
    )
    stack.callback(
        subprocess.run,
        [*run_as, pg_ctl, "-D", data_dir, "-m", "immediate", "stop"],
        stdout=subprocess.DEVNULL,
        cwd=data_root,
    )
    url = f"postgres://postgres@127.0.0.1:{port}/chat"
    wait_for(lambda: postgres_answers(url), "PostgreSQL")
    return url


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def start_redis(stack: ExitStack) -> str:
    server = shutil.which("redis-server")
    if not server:
        raise SystemExit(INSTALL_REDIS)
    port = free_port()
    work_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="chat-redis-"))
    log(f"starting a throw-away Redis on port {port} ({server})")
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=work_dir,
        stdout=subprocess.DEVNULL,
    )

    def stop() -> None:
        process.terminate()
        process.wait(timeout=10)

    stack.callback(stop)
    url = f"redis://127.0.0.1:{port}/9"
    wait_for(lambda: redis_answers(url), "Redis")
    return url


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        raise SystemExit("usage: services.py -- COMMAND [ARGS...]")
    env = dict(os.environ)
    with ExitStack() as stack:
        database_url = env.get("DATABASE_URL") or DEFAULT_DATABASE_URL
        if postgres_answers(database_url):
            log(f"using PostgreSQL at {urlparse(database_url).netloc}")
        else:
            log(f"no PostgreSQL answers at {urlparse(database_url).netloc}")
            database_url = start_postgres(stack)
        redis_url = env.get("REDIS_URL") or DEFAULT_REDIS_URL
        if redis_answers(redis_url):
            log(f"using Redis at {urlparse(redis_url).netloc}")
        else:
            log(f"no Redis answers at {urlparse(redis_url).netloc}")
            redis_url = start_redis(stack)
        env["DATABASE_URL"] = database_url
        env["REDIS_URL"] = redis_url
        return subprocess.call(argv, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
