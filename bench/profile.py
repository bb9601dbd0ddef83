"""Profile our server under load with py-spy and say where the time goes.

    python -m bench.profile --rate 150 --seconds 20

Starts ours (pinned to CPU 0) on a fresh bench database, drives it open loop at
`--rate` msg/s over 50 pairs (load generator and py-spy on CPU 1), records with
`py-spy record --format raw --threads --idle --nonblocking`, and folds the stacks
into categories per thread: the event loop (daphne/Twisted + asyncio) and the one
thread behind database_sync_to_async. Writes bench/results/profile-ours.json and
keeps the raw stacks in bench/results/profile-ours.txt.tmp (flame graph input).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from bench import servers
from bench.run import QUICK, SETUP_FILE, prepare_database
from bench.servers import LOAD_CPU, RESULTS, ROOT

# Rules: (category, pattern that must occur in the stack). The first that matches wins.
# Stacks are "frame;frame;..." root first, each frame "function (path:line)".
DB_RULES = [
    (
        "idle: no database work queued",
        r"^[^;]*(;[^;]*){0,4}_worker \(\S*concurrent/futures/thread\.py:\d+\)$",
    ),
    ("blocked: on_commit -> async_to_sync(group_send), waits for the event loop", r"send_many_now"),
    (
        "waiting on PostgreSQL: COMMIT (WAL fsync)",
        r"Connection\.commit .*psycopg/connection\.py.*;Connection\.wait",
    ),
    ("waiting on PostgreSQL: statements", r"Connection\.wait \(\S*psycopg/connection\.py:\d+\)$"),
    ("sync Redis calls from the DB thread", r"site-packages/redis/"),
    ("psycopg client side (send, adapt, parse)", r"psycopg/[^;]*$"),
    ("Django ORM Python (build/compile SQL, make models)", r"django/[^;]*$"),
    ("other Python (our services, JSON, stdlib)", r"."),
]
LOOP_RULES = [
    ("idle (waiting in epoll)", r"^(?!.*Handle\._run).*select \(\S*selectors\.py:\d+\)$"),
    ("channel layer: group_send", r"group_send"),
    ("channel layer: receive / dispatch to consumers", r"channels_redis|await_many_dispatch"),
    ("redis-py client (presence, layer I/O)", r"site-packages/redis/"),
    ("JSON encode/decode", r"json/(encoder|decoder)"),
    (
        "WebSocket framing and socket writes (autobahn, Twisted, asyncio transports)",
        r"autobahn|twisted|selector_events",
    ),
    ("asgiref sync/async hand-off", r"asgiref"),
    ("consumer and app code", r"/(messaging|presence|accounts|chatproject)/"),
    ("asyncio scheduling and other", r"."),
]


def _after_loop_root(frames: str) -> str:
    """Drop the reactor/run_forever frames at the root of every event-loop stack."""
    marker = "BaseEventLoop._run_once ("
    at = frames.rfind(marker)
    if at < 0:
        return frames
    rest = frames[at:].split(";", 1)
    return rest[1] if len(rest) > 1 else rest[0]


def classify(stack: str, rules: list[tuple[str, str]]) -> str:
    for name, pattern in rules:
        if re.search(pattern, stack):
            return name
    return "unclassified"


def fold(raw: Path) -> dict:
    """Count samples per thread and per (thread kind, category) from py-spy's raw output.

    Lines look like `thread (TID): NAME;frame (file:line);...;leaf (file:line) COUNT`.
    The event loop is MainThread (daphne runs Twisted on asyncio there); the thread
    behind database_sync_to_async is asgiref's single-thread executor
    (`ThreadPoolExecutor-0_0`).
    """
    by_thread: Counter[str] = Counter()
    categories: dict[str, Counter[str]] = {"event loop": Counter(), "DB thread": Counter()}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        head, _, frames = stack.partition(";")
        name = head.split(":", 1)[1].strip() if ":" in head else head
        by_thread[name] += n
        if name == "MainThread":
            if re.search(LOOP_RULES[0][1], frames):
                categories["event loop"][LOOP_RULES[0][0]] += n
            else:
                categories["event loop"][classify(_after_loop_root(frames), LOOP_RULES[1:])] += n
        elif name.startswith("ThreadPoolExecutor"):
            categories["DB thread"][classify(frames, DB_RULES)] += n
    out: dict = {"samples_by_thread": dict(by_thread.most_common())}
    for kind, counter in categories.items():
        total = sum(counter.values()) or 1
        out[kind] = {
            name: {"samples": n, "share": round(n / total, 3)} for name, n in counter.most_common()
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=150)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--skip-setup", action="store_true")
    parser.add_argument("--fold-only", help="only fold an existing raw py-spy file")
    parser.add_argument(
        "--code", default="HEAD", help="commit to profile, or 'tree' for the working tree"
    )
    args = parser.parse_args()
    if args.fold_only:
        print(json.dumps(fold(Path(args.fold_only)), indent=1))
        return
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if args.code == "tree":
        sha = "working tree"
    else:
        servers.OURS_SRC, sha = servers.snapshot(args.code)
    if not args.skip_setup:
        config = {
            **QUICK,
            "setup": {**QUICK["setup"], "pairs": max(QUICK["setup"]["pairs"], args.pairs)},
        }
        prepare_database(config)
    server = servers.start("ours")
    raw = RESULTS / "profile-ours.txt.tmp"
    try:
        spec = {
            "scenario": "overload",
            "system": "ours",
            "port": server.port,
            "pid": server.pid,
            "setup": str(SETUP_FILE),
            "heartbeat": 5.0,
            "params": {
                "pairs": args.pairs,
                "rate": args.rate,
                "hold": args.seconds + 4,
                "drain_cap": 30,
                "say_connected": True,
            },
        }
        load = subprocess.Popen(
            ["taskset", "-c", LOAD_CPU, sys.executable, "-m", "bench.loadgen", json.dumps(spec)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Sample the hold only: 2,000 sockets take tens of seconds to connect.
        # The generator's stderr is passed on as it comes (a full pipe would stop it).
        connected = threading.Event()

        def pass_stderr() -> None:
            for line in load.stderr:
                if line.strip() == "connected":
                    connected.set()
                else:
                    sys.stderr.write(line)

        threading.Thread(target=pass_stderr, daemon=True).start()
        if not connected.wait(timeout=300):
            load.kill()
            raise RuntimeError("the load generator did not connect within 300 s")
        time.sleep(1)
        subprocess.run(
            [
                "taskset",
                "-c",
                LOAD_CPU,
                pyspy,
                "record",
                "--pid",
                str(server.pid),
                "--duration",
                str(int(args.seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--threads",
                "--idle",
                "--nonblocking",
                "--full-filenames",
                "--output",
                str(raw),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        out = load.stdout.read()  # stderr is the thread's
        load.wait(timeout=120)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        point = json.loads(lines[-1]) if lines else {}
    finally:
        server.stop()
    summary = {
        "commit": sha,
        "rate": args.rate,
        "seconds": args.seconds,
        "pairs": args.pairs,
        "load": {
            k: point.get(k)
            for k in (
                "msgs_per_s",
                "p50_ms",
                "p99_ms",
                "ack_p99_ms",
                "lost",
                "pending",
                "server_cpu",
                "other_cpu0",
            )
        },
        "profile": fold(raw),
    }
    (RESULTS / "profile-ours.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
