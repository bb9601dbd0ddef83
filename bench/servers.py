"""Start and stop the systems under test, each pinned to the server CPU."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# Where "ours" is served from: a snapshot of a commit (set by bench.run; the shared
# working tree is edited by others while a run goes on), or the working tree itself.
OURS_SRC = ROOT
SERVER_CPU = "0"
LOAD_CPU = "1"

BENCH_DB = "chat_bench"
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


def ours_env() -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "chatproject.settings",
        "DATABASE_URL": f"{PG_URL}/{BENCH_DB}",
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": "bench",
        "DEBUG": "0",
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": os.environ.get("BENCH_OURS_LOG_LEVEL", "WARNING"),
        # History pages are fetched back to back by one user: lift the per-user
        # REST throttle (1200/min by default) so that it is not what we measure.
        "THROTTLE_USER": "10000000/min",
        # Likewise the per-socket frame bucket (20/s, burst 60): it limits what one
        # client may send, while the benchmark drives the server through few sockets.
        "CHAT_SOCKET_RATE": "1000000",
        "CHAT_SOCKET_BURST": "1000000",
        "STATIC_ROOT": str(RESULTS / "static.tmp"),
        "VAR_DIR": str(RESULTS / "var.tmp"),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def snapshot(commit: str = "HEAD") -> tuple[Path, str]:
    """Export a commit's tree (git archive, read-only for the repo) for "ours" to run from."""
    argv = ["git", "rev-parse", "--short", commit]
    sha = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    target = Path(f"/tmp/chat-bench-src-{sha}")
    if not (target / "manage.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", sha], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target, sha


def _spawn(
    name: str, argv: list[str], env: dict[str, str], cwd: Path = ROOT
) -> tuple[subprocess.Popen, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS / f"{name}.log.tmp"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *argv],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, log_path


def _wait(server: Server, check, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
        if check():
            return
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.name} did not come up:\n{server.log_tail()}")


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start(name: str) -> Server:
    port = free_port()
    python = sys.executable
    if name == "ours":
        argv = [python, "-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", str(port)]
        argv.append("chatproject.asgi:application")
        env = ours_env()
        check = lambda: _healthy(port)  # noqa: E731
    elif name == "channels_tutorial":
        argv = [python, "-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", str(port)]
        argv.append("bench.baselines.tutorial_asgi:application")
        env = {
            "DJANGO_SETTINGS_MODULE": "bench.baselines.tutorial_settings",
            "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": "benchtut",
        }
        check = lambda: listening(port)  # noqa: E731
    elif name == "bare_relay":
        argv = [python, "-m", "bench.baselines.relay", "--port", str(port), "--redis", REDIS_URL]
        env = {}
        check = lambda: listening(port)  # noqa: E731
    else:
        raise ValueError(name)
    process, log_path = _spawn(name, argv, env, OURS_SRC if name == "ours" else ROOT)
    server = Server(name, port, process, log_path)
    _wait(server, check)
    return server
