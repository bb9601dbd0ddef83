"""The benchmark: every scenario against ours and the baselines, in one run.

    python -m bench.run --mode quick   # `make bench`: under 5 minutes
    python -m bench.run --mode full    # `make bench-full`: 30 s holds, 1M messages

Servers run pinned to CPU 0 (`taskset -c 0`), the load generator to CPU 1; one
process each. PostgreSQL and Redis are the machine's own and are not pinned.
Writes bench/results/latest.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psycopg
import redis

from bench import servers
from bench.servers import LOAD_CPU, RESULTS, ROOT, Server
from bench.stats import max_rate

SYSTEMS = ["ours", "channels_tutorial", "bare_relay", "redis_floor"]
SCENARIOS = [
    "direct_unloaded",
    "direct_sweep",
    "group100_fanout",
    "idle_connections",
    "reconnect_sync",
    "rest_history",
]
# Which systems a scenario means something for.
APPLIES = {
    "direct_unloaded": SYSTEMS,
    "direct_sweep": SYSTEMS,
    "group100_fanout": SYSTEMS,
    "idle_connections": SYSTEMS[:3],
    "reconnect_sync": SYSTEMS[:3],
    "rest_history": ["ours"],
}

QUICK = {
    "direct_unloaded": {"warmup": 20, "messages": 200},
    "direct_sweep": {
        "pairs": [50],
        "rates": [25, 50, 100, 200, 400, 800, 1600, 3200],
        "hold": 2.0,
        "drain_cap": 6.0,
    },
    "overload": {"pairs": 50, "hold": 2.0, "drain_cap": 45.0},
    "group100_fanout": {"size": 100, "warmup": 3, "messages": 20, "gap": 0.02},
    "idle_connections": {
        "levels": [1000, 5000],
        "concurrency": 100,
        "settle": 1.0,
        "probe_rate": 50,
        "probe_hold": 2.5,
        "beat_hold": 2.0,
    },
    "reconnect_sync": {"missed": 1000, "trials": 8},
    "rest_history": {"seed": 100_000, "warmup": 20, "requests": 200, "limit": 50},
    "setup": {"pairs": 50, "idle": 1000},
}
FULL = {
    "direct_unloaded": {"warmup": 50, "messages": 2000},
    "direct_sweep": {
        "pairs": [50, 1000],
        "rates": [25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 4000, 5000, 6000],
        "hold": 30.0,
        "drain_cap": 30.0,
    },
    "overload": {"pairs": 50, "hold": 10.0, "drain_cap": 120.0},
    "group100_fanout": {"size": 100, "warmup": 5, "messages": 200, "gap": 0.02},
    "idle_connections": {
        "levels": [1000, 5000, 15000],
        "concurrency": 50,
        "settle": 3.0,
        "probe_rate": 50,
        "probe_hold": 5.0,
        "beat_hold": 5.0,
    },
    "reconnect_sync": {"missed": 1000, "trials": 30},
    "rest_history": {"seed": 1_000_000, "warmup": 50, "requests": 1000, "limit": 50},
    "setup": {"pairs": 1000, "idle": 1000},
}

SETUP_FILE = RESULTS / "setup.json.tmp"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- machine and environment -----------------------------------------------------------


def machine_info(mode: str, config: dict) -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kb = int(fh.readline().split()[1])
    with psycopg.connect(f"{servers.PG_URL}/postgres") as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
        fsync = conn.execute("SHOW fsync").fetchone()[0]
        sync_commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
    redis_version = redis.Redis.from_url(servers.REDIS_URL).info("server")["redis_version"]
    packages = {
        name: metadata.version(name)
        for name in ("Django", "channels", "channels-redis", "daphne", "websockets", "redis")
    }
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg,
        "postgresql_fsync": fsync,
        "postgresql_synchronous_commit": sync_commit,
        "redis": redis_version,
        "packages": packages,
        "git_commit": commit,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_start": os.getloadavg(),
        "pinning": f"server on CPU {servers.SERVER_CPU}, load generator on CPU {LOAD_CPU}; "
        "PostgreSQL and Redis unpinned",
        "mode": mode,
        "config": config,
        "notes": [
            "Shared machine: other engineers' test suites may run at the same time, "
            "so numbers are noisy; compare systems within one run. Each sweep point "
            "records the CPU used by the server, the generator and everything else "
            "(other_cpu0/1, which includes PostgreSQL and Redis).",
            "Every socket of ours sends `heartbeat` every 5 s as docs/protocol.md asks; "
            "the baselines have no heartbeat frame.",
            "Daphne runs with -v 0 (no access log) for ours and the tutorial alike.",
        ]
        + (
            [
                f"Quick mode: direct_sweep holds each rate {config['direct_sweep']['hold']} s "
                "(the target says 30 s) over 50 pairs only; rest_history seeded with "
                f"{config['rest_history']['seed']:,} messages, not 1M; idle sockets up to "
                f"{config['idle_connections']['levels'][-1]:,}, not 15,000.",
            ]
            if mode == "quick"
            else []
        ),
    }


def prepare_database(config: dict) -> None:
    """A fresh chat_bench database, migrated and seeded with the benchmark's users."""
    with psycopg.connect(f"{servers.PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            [servers.BENCH_DB],
        )
        conn.execute(f"DROP DATABASE IF EXISTS {servers.BENCH_DB}")
        conn.execute(f"CREATE DATABASE {servers.BENCH_DB}")
    env = {**os.environ, **servers.ours_env()}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=servers.OURS_SRC,
        env=env,
        check=True,
    )
    setup = config["setup"]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.setup_ours",
            "--pairs",
            str(setup["pairs"]),
            "--idle",
            str(setup["idle"]),
            "--history",
            str(config["rest_history"]["seed"]),
            "--out",
            str(SETUP_FILE),
        ],
        cwd=servers.OURS_SRC,
        env=env,
        check=True,
    )


def wait_quiet(limit: float) -> float:
    """Wait (at most `limit` s) until both cores are mostly idle; the busy share seen."""
    deadline = time.monotonic() + limit
    while True:
        with open("/proc/stat") as fh:
            a = [int(v) for v in fh.readline().split()[1:]]
        time.sleep(1.0)
        with open("/proc/stat") as fh:
            b = [int(v) for v in fh.readline().split()[1:]]
        total = sum(b) - sum(a)
        idle = (b[3] + b[4]) - (a[3] + a[4])
        busy = 1 - idle / max(total, 1)
        if busy < 0.15 or time.monotonic() > deadline:
            return round(busy, 2)


def flush_redis() -> None:
    redis.Redis.from_url(servers.REDIS_URL).flushdb()


# --- running scenarios -------------------------------------------------------------------


def loadgen(spec: dict, timeout: float) -> dict:
    argv = ["taskset", "-c", LOAD_CPU, sys.executable, "-m", "bench.loadgen", json.dumps(spec)]
    try:
        proc = subprocess.run(
            argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"load generator timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"load generator failed with {proc.returncode}"}
    return json.loads(lines[-1])


class Runner:
    def __init__(self, mode: str, config: dict) -> None:
        self.mode = mode
        self.config = config
        self.server: Server | None = None
        self.results: dict[str, dict[str, dict]] = {s: {} for s in SCENARIOS}

    def ensure_server(self, system: str, *, fresh: bool = False) -> Server:
        if self.server is not None and (fresh or not self.server.alive()):
            self.server.stop()
            self.server = None
        if self.server is None:
            self.server = servers.start(system)
        return self.server

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def run(self, system: str, scenario: str, params: dict, timeout: float = 300) -> dict:
        spec = {
            "scenario": scenario,
            "system": system,
            "params": params,
            "redis_url": servers.REDIS_URL,
            "setup": str(SETUP_FILE) if system == "ours" else None,
            # Clients of ours beat as the protocol asks (PRESENCE_HEARTBEAT_INTERVAL).
            "heartbeat": 5.0 if system == "ours" else None,
        }
        if system != "redis_floor":
            spec["port"] = self.server.port
            spec["pid"] = self.server.pid
        started = time.monotonic()
        result = loadgen(spec, timeout)
        result["wall_s"] = round(time.monotonic() - started, 1)
        if system != "redis_floor" and not self.server.alive():
            result["server_died"] = True
            result["server_log"] = self.server.log_tail(10)
        log(f"{scenario} / {system}: {summary(result)}")
        return result

    def system(self, system: str, scenarios: list[str]) -> None:
        cfg = self.config
        if system == "redis_floor":
            for scenario in scenarios:
                if system in APPLIES[scenario]:
                    result = self.run(system, scenario, cfg[scenario], timeout=3600)
                    if scenario == "direct_sweep":
                        result = sweep_entry(result)
                    self.results[scenario][system] = result
            return
        self.ensure_server(system, fresh=True)
        for scenario in ("direct_unloaded", "group100_fanout", "reconnect_sync", "rest_history"):
            if scenario not in scenarios or system not in APPLIES[scenario]:
                continue
            if scenario == "reconnect_sync" and system != "ours":
                missed = cfg[scenario]["missed"]
                self.results[scenario][system] = {
                    "supported": False,
                    "note": "no storage: a device that was offline gets nothing back",
                    "p50_ms": None,
                    "p99_ms": None,
                    "msgs_per_s": 0,
                    "lost": missed,
                    "duplicated": 0,
                    "gaps": missed,
                }
                continue
            self.ensure_server(system)
            self.results[scenario][system] = self.run(system, scenario, cfg[scenario])
        if "direct_sweep" in scenarios:
            self.ensure_server(system, fresh=True)
            sweep = self.run(system, "direct_sweep", cfg["direct_sweep"], timeout=3600)
            self.results["direct_sweep"][system] = sweep_entry(sweep)
        if "idle_connections" in scenarios:
            self.ensure_server(system, fresh=True)
            params = {**cfg["idle_connections"], "pid": self.server.pid}
            self.results["idle_connections"][system] = self.run(
                system, "idle_connections", params, timeout=1800
            )
        self.stop_server()

    def overload(self, systems: list[str]) -> None:
        """Every system at 4x our max_rate: is anything lost without a word?"""
        ours = self.results["direct_sweep"].get("ours", {})
        base = ours.get("max_rate") or self.config["direct_sweep"]["rates"][0]
        rate = 4 * base
        for system in systems:
            entry = self.results["direct_sweep"].get(system)
            if system == "redis_floor" or entry is None or "error" in entry:
                continue
            self.ensure_server(system, fresh=True)
            params = {**self.config["overload"], "rate": rate}
            result = self.run(system, "overload", params, timeout=900)
            entry["overload"] = result
            if "error" not in result:
                entry["lost"] += result["lost"]
                entry["duplicated"] += result["duplicated"]
            self.stop_server()


def sweep_entry(sweep: dict) -> dict:
    if "error" in sweep:
        return sweep
    by_pairs = sweep["by_pairs"]
    first = next(iter(by_pairs))
    points = by_pairs[first]
    best = max_rate(points)
    at = next((p for p in points if p["rate"] == best), points[0] if points else {})
    entry = {
        "p50_ms": at.get("p50_ms"),
        "p99_ms": at.get("p99_ms"),
        "msgs_per_s": at.get("msgs_per_s"),
        # Lost and duplicated over every point of the sweep (and the overload run).
        "lost": sum(p.get("lost", 0) for ps in by_pairs.values() for p in ps),
        "duplicated": sum(p.get("duplicated", 0) for ps in by_pairs.values() for p in ps),
        "max_rate": best,
        "max_rate_rule": "highest offered rate with p99 <= 50 ms and nothing lost, "
        "duplicated or still pending",
        "hold_s": sweep["hold_s"],
        "pairs": int(first),
        "points": points,
        "wall_s": sweep.get("wall_s"),
    }
    for count, ps in by_pairs.items():
        if count != first:
            entry[f"max_rate_{count}_pairs"] = max_rate(ps)
            entry[f"points_{count}_pairs"] = ps
    return entry


def summary(result: dict) -> str:
    if "error" in result:
        return f"ERROR {result['error']}"
    if "by_pairs" in result:
        ps = next(iter(result["by_pairs"].values()))
        return f"max_rate={max_rate(ps)} ({len(ps)} points, {result.get('wall_s')} s)"
    keys = ("p50_ms", "p99_ms", "msgs_per_s", "lost", "duplicated", "kb_per_conn", "wall_s")
    return " ".join(f"{k}={result[k]}" for k in keys if k in result)


# --- the table ----------------------------------------------------------------------------


def cell(scenario: str, entry: dict | None) -> str:
    if entry is None:
        return "-"
    if "error" in entry:
        return "error"
    if entry.get("supported") is False:
        return f"n/a (loses {entry['lost']})"

    def num(value, digits=1):
        return "-" if value is None else f"{value:.{digits}f}"

    text = f"{num(entry.get('p50_ms'))}/{num(entry.get('p99_ms'))} ms"
    if scenario == "direct_sweep":
        text = f"max {entry['max_rate']:g}/s, {text}"
    elif scenario == "idle_connections":
        text = f"{entry['kb_per_conn']:.1f} KB/conn, {entry['connect_per_s']:.0f} conn/s, p99 " + (
            num(entry.get("p99_ms"))
        )
    elif entry.get("msgs_per_s") is not None:
        text += f", {entry['msgs_per_s']:,.0f}/s"
    if entry.get("lost") or entry.get("duplicated"):
        text += f", lost {entry.get('lost', 0)} dup {entry.get('duplicated', 0)}"
    return text


def table(results: dict) -> str:
    systems = [s for s in SYSTEMS if any(s in results[sc] for sc in results)]
    rows = [["scenario", *systems]]
    for scenario, entries in results.items():
        rows.append([scenario, *(cell(scenario, entries.get(s)) for s in systems)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["quick", "full"], default="quick")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--out", default=str(RESULTS / "latest.json"))
    parser.add_argument(
        "--code",
        default="HEAD",
        help="commit whose code 'ours' runs (exported with git archive), or 'tree' for "
        "the working tree as it is",
    )
    parser.add_argument("--rates", help="direct_sweep rates instead of the mode's, e.g. 1600,2000")
    parser.add_argument("--hold", type=float, help="direct_sweep seconds per rate instead")
    parser.add_argument("--pairs", help="direct_sweep pair counts instead, e.g. 50,1000")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    config = QUICK if args.mode == "quick" else FULL
    sweep = config["direct_sweep"]
    if args.rates:
        sweep["rates"] = [int(r) for r in args.rates.split(",")]
    if args.hold:
        sweep["hold"] = args.hold
    if args.pairs:
        sweep["pairs"] = [int(p) for p in args.pairs.split(",")]
        config["setup"]["pairs"] = max(config["setup"]["pairs"], *sweep["pairs"])
    systems = [s for s in SYSTEMS if s in args.systems.split(",")]
    scenarios = [s for s in SCENARIOS if s in args.scenarios.split(",")]
    started = time.monotonic()
    RESULTS.mkdir(parents=True, exist_ok=True)
    quiet_wait = 4 if args.mode == "quick" else 30
    if args.code == "tree":
        machine_code = "working tree (uncommitted changes included)"
    else:
        servers.OURS_SRC, sha = servers.snapshot(args.code)
        machine_code = f"commit {sha} (git archive into {servers.OURS_SRC})"
    machine = machine_info(args.mode, config)
    machine["ours_code"] = machine_code
    if "ours" in systems:
        log("preparing the bench database")
        prepare_database(config)
    flush_redis()
    runner = Runner(args.mode, config)
    try:
        for system in systems:
            busy = wait_quiet(quiet_wait)
            machine.setdefault("busy_before_system", {})[system] = busy
            log(f"== {system} (machine busy {busy:.0%} before it)")
            runner.system(system, scenarios)
        if "direct_sweep" in scenarios:
            log("== overload at 4x our max_rate")
            runner.overload(systems)
    finally:
        runner.stop_server()
    machine["loadavg_end"] = os.getloadavg()
    machine["wall_s"] = round(time.monotonic() - started, 1)
    results = {k: v for k, v in runner.results.items() if v}
    out = {"machine": machine, "scenarios": results}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(table(results))
    print(f"\nwrote {args.out} in {machine['wall_s']} s ({args.mode} mode)")


if __name__ == "__main__":
    main()
